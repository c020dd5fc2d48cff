"""Registry DDL shipped with dbml: numbered migrations ``NNN_name.sql`` applied in order."""
