"""Training: the loop (:mod:`~dbml.training.loop`), the network of encoders, trunk and
head (:mod:`~dbml.training.network`), export to ONNX (:mod:`~dbml.training.export`),
fine-tuning (:mod:`~dbml.training.finetune`) and TRAIN MODEL's stages
(:mod:`~dbml.training.pipeline`). Everything here needs torch."""

from dbml.training.loop import Batch, Batches, Callback, EarlyStopping, EpochLog, ProgressBar, Trainer, fit, rows, take

__all__ = ["Batch", "Batches", "Callback", "EarlyStopping", "EpochLog", "ProgressBar", "Trainer", "fit", "rows", "take"]
