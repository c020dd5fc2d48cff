"""Where people work with dbml: the ``dbml`` shell and the Jupyter extension.

Each module imports its optional libraries (prompt_toolkit, IPython) only when used,
and names the pip extra to install when one is missing.
"""
