"""Errors a user can act on: the CLI prints them as one line and exits with code 2."""


class LlmrecError(Exception):
    """Bad input from the user (file, recipe key, id); never a bug in llmrec."""


class DataFormatError(LlmrecError):
    """A data file that is missing, empty or malformed; the message names the file and line."""

    def __init__(self, path, problem: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")
        self.path, self.line, self.problem = path, line, problem


class ConfigError(LlmrecError):
    """A recipe or override that names an unknown key or carries a value of the wrong type."""
