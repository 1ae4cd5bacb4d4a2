"""Shared plumbing of the interop peers: logging, signals, options, fault simulation.

Not a peer itself. Every peer prints one line per event on stdout (flushed at once), prints a line
containing the word "ready" once its sockets are bound or connected, and exits with status 0 on
SIGTERM or SIGINT after closing its sockets with linger 0.
"""

import argparse
import random
import signal
import sys
import time

import zmq


class Shutdown(Exception):
    """Raised from the signal handler, so blocking calls (poll, recv, sleep) end at once."""


def now_ms():
    return time.monotonic() * 1000.0


def sleep_ms(ms):
    if ms > 0:
        time.sleep(ms / 1000.0)


def make_logger(role):
    def log(text):
        stamp = time.strftime("%H:%M:%S") + ".%03d" % (int(time.time() * 1000) % 1000)
        print("%s %s: %s" % (stamp, role, text), flush=True)

    return log


def show_identity(identity):
    """An identity for humans: printable ASCII as is, anything else as upper-case hex."""
    if identity and all(0x20 < b < 0x7F for b in identity):
        return identity.decode("ascii")
    return identity.hex().upper()


def show_frames(frames):
    return "|".join(show_identity(f) if f else "''" for f in frames)


def random_identity():
    """A worker identity as the Guide's Python workers make it: "%04X-%04X", e.g. "1A2B-3C4D"."""
    return "%04X-%04X" % (random.randrange(0x10000), random.randrange(0x10000))


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    pass


def parser(prog, description):
    """An argument parser whose --help shows `description` as written and every default."""
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=_HelpFormatter)


def add_fault_options(p, overload_ms):
    """Failure injection as the Guide's servers and workers do it, off unless asked for."""
    p.add_argument("--faults-after", type=int, default=3, metavar="N",
                   help="requests handled normally before faults may be simulated")
    p.add_argument("--crash-probability", type=float, default=0.0, metavar="P",
                   help="chance per request of a simulated crash (the process exits 1)")
    p.add_argument("--overload-probability", type=float, default=0.0, metavar="P",
                   help="chance per request (when not crashing) of simulated CPU overload")
    p.add_argument("--overload-ms", type=float, default=overload_ms, metavar="MS",
                   help="extra time an overloaded request takes")


def fault_decision(args, cycles):
    """'crash', 'overload' or 'normal' for request number `cycles` (1-based)."""
    if cycles > args.faults_after:
        if random.random() < args.crash_probability:
            return "crash"
        if random.random() < args.overload_probability:
            return "overload"
    return "normal"


def run(main, log):
    """Runs main(ctx) with SIGTERM/SIGINT turned into a clean exit; exits with main's status."""

    def on_signal(signum, _frame):
        raise Shutdown(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ctx = zmq.Context()
    status = 0
    try:
        status = main(ctx) or 0
    except (Shutdown, KeyboardInterrupt) as why:
        log("interrupted (%s), shutting down" % (why or "SIGINT"))
        status = 0
    finally:
        # Ignore further signals while closing: a second one must not leave a half-closed context.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        ctx.destroy(linger=0)
    sys.exit(status)
