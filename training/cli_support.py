"""What the command-line tools of training/ share: a quiet start, progress lines that suit a log
file, and errors a user can cause printed as one message instead of a traceback.

Standard library only: ``start`` has to run before anything imports TensorFlow, and importing
``keras_dgdm`` imports Keras, which imports it (that is why this module is not in the package).

* ``start(argv)``: unless the user set ``TF_CPP_MIN_LOG_LEVEL`` or passed ``--debug``, sets it to
  3 and imports TensorFlow with its C++ start-up lines (``oneDNN custom operations are on``,
  ``Could not find cuda drivers``, ``failed call to cuInit``, ...) held back. TensorFlow 2.21
  writes some of them before its logging reads ``TF_CPP_MIN_LOG_LEVEL``, so they are caught at
  the file descriptor; anything else written meanwhile is passed on, and everything is if the
  import fails.
* ``fit_verbosity(quiet)``: Keras' progress bar on a terminal, one line per epoch otherwise.
* ``user_errors(prog, errors, debug)``: ``PROG: error: MESSAGE`` and a non-zero exit status for
  the given exception types; ``--debug`` or ``KERAS_DGDM_DEBUG=1`` shows the traceback instead.
"""
from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import sys
import tempfile

DEBUG_ENV = "KERAS_DGDM_DEBUG"
#: The default when the user has not chosen: C++ errors too (e.g. "failed call to cuInit" on a
#: machine without a GPU); TensorFlow's Python exceptions still say what went wrong.
TF_LOG_LEVEL = "3"
DEBUG_HELP = f"show tracebacks and TensorFlow's C++ log lines (or set {DEBUG_ENV}=1)"

# A C++ log record: "I0000 00:00:1796221350.694073    9863 port.cc:153] message"; absl's note
# that such records go to stderr before its logging is initialised.
_NATIVE_RECORD = re.compile(r"^[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\] ")
_ABSL_PREINIT = "WARNING: All log messages before absl::InitializeLog() is called"
# Lines that start something else than a continuation of a C++ record.
_OTHER_START = re.compile(r"^(\S.*\.py:\d+: |Traceback |WARNING:|INFO:|ERROR:)")


def debug_requested(argv) -> bool:
    """True when ``argv`` holds ``--debug`` or ``KERAS_DGDM_DEBUG`` is set to something not 0."""
    return "--debug" in list(argv) or os.environ.get(DEBUG_ENV, "0").strip() not in ("", "0")


def without_native_records(text: str) -> str:
    """``text`` without TensorFlow's C++ log records: the lines in their format, absl's
    pre-initialisation note, and the lines that continue a record (any line after one that does
    not start a Python warning, traceback or log record).

    Example:
        >>> without_native_records("I0000 00:00:1.5    7 port.cc:1] oneDNN on\\nkept\\n")
        'kept\\n'
    """
    kept, in_record = [], False
    for line in text.splitlines(keepends=True):
        if _NATIVE_RECORD.match(line) or line.startswith(_ABSL_PREINIT):
            in_record = True
        elif in_record and line.strip() and not _OTHER_START.match(line):
            pass  # e.g. "To enable the following instructions: AVX2 ..." after cpu_feature_guard
        else:
            in_record = False
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def native_stderr_filtered():
    """Holds back what is written to file descriptor 2 in the block and then writes it out
    without C++ log records; writes all of it when the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = False
        try:
            yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            text = text if failed else without_native_records(text)
            if text:
                sys.stderr.write(text)
                sys.stderr.flush()


def start(argv=None, import_tensorflow: bool = True) -> bool:
    """Keeps TensorFlow's C++ log lines out of the way (see the module docstring); call it
    before anything imports TensorFlow (``import_tensorflow=False``: the tool may never need it,
    only the log level is set). Returns whether debugging was asked for."""
    argv = sys.argv[1:] if argv is None else argv
    debug = debug_requested(argv)
    if debug or "TF_CPP_MIN_LOG_LEVEL" in os.environ:
        return debug
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = TF_LOG_LEVEL
    if import_tensorflow and "tensorflow" not in sys.modules \
            and importlib.util.find_spec("tensorflow") is not None:
        with native_stderr_filtered():
            import tensorflow  # noqa: F401
    return debug


def fit_verbosity(quiet: bool = False, stream=None) -> int:
    """Keras ``fit`` verbosity: 0 when ``quiet``, 1 (progress bar) on a terminal, else 2 (one line
    per epoch: a log file gets no carriage returns or ANSI codes)."""
    if quiet:
        return 0
    stream = sys.stdout if stream is None else stream
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2


@contextlib.contextmanager
def user_errors(prog: str, errors, debug: bool = False, status: int = 2, interrupted: str = ""):
    """Turns the ``errors`` types raised in the block into ``PROG: error: MESSAGE`` on stderr and
    ``SystemExit(status)``; with ``debug`` they propagate with their traceback. Ctrl-C ends with
    status 130 and one line (``PROG: interrupted`` + ``interrupted``)."""
    try:
        yield
    except KeyboardInterrupt:
        if debug:
            raise
        sys.stderr.write(f"\n{prog}: interrupted{interrupted}\n")
        raise SystemExit(130) from None
    except errors as error:
        if debug:
            raise
        message = str(error).strip() or type(error).__name__
        sys.stderr.write(f"{prog}: error: {message}\n"
                         f"({prog} --debug shows the traceback)\n")
        raise SystemExit(status) from None
