"""Majordomo worker peer (the role of the Guide's mdworker on its worker API mdwrkapi, RFC 7/MDP
0.1), for interop tests: an echo service.

A DEALER socket connects to --connect (no identity set unless --identity: the broker's ROUTER
generates one per socket) and sends READY [""]["MDPW01"][0x01][service]. The worker is single
threaded: one poll loop, timeout --heartbeat-interval, runs only while the worker waits for a
request, so it neither reads nor heartbeats while it "works" (--work-ms, spent before each reply).

* REQUEST [""]["MDPW01"][0x02][C][""][body...]: the address and the empty frame after it are
  taken off, the body is "worked on" and echoed as REPLY [""]["MDPW01"][0x03][C][""][body...]
  just before the next wait (the reply is sent by the call that waits for the next request);
* HEARTBEAT: nothing; DISCONNECT: a new socket at once, which says READY (no delay);
  any other command: logged as invalid input;
* any message restores the liveness to --liveness. A message shorter than 3 frames, or whose
  first frame is not empty or second is not "MDPW01", fails the reference's assertions: this peer
  logs "assertion failed" and exits with status 3 (the reference aborts);
* a poll that times out costs one liveness; at zero the worker logs "disconnected from broker",
  sleeps --reconnect (a fixed delay, no back-off) and opens a new socket that says READY;
* after each poll that brought no request, when the heartbeat is due, HEARTBEAT
  [""]["MDPW01"][0x04] is sent, whether the broker is there or not.

On SIGTERM/SIGINT it exits 0 without a word to the broker (the reference sends no DISCONNECT).
"""

import zmq

from _common import (add_fault_options, fault_decision, make_logger, now_ms, parser, run,
                     show_frames, show_identity, sleep_ms)

log = make_logger("mdworker")

MDPW01 = b"MDPW01"
READY, REQUEST, REPLY, HEARTBEAT, DISCONNECT = (bytes([n]) for n in range(1, 6))


class AssertionAbort(Exception):
    """Where the reference asserts (and aborts): a malformed message from the broker."""


class WorkerSession:
    """The worker API: connect and register, then recv(reply) sends a reply and waits for a request."""

    def __init__(self, ctx, args):
        self.ctx = ctx
        self.args = args
        self.socket = None
        self.liveness = args.liveness
        self.heartbeat_at = 0.0
        self.reply_to = None
        self.connects = 0

    def send(self, frames):
        if self.args.verbose:
            log("sending %s" % show_frames(frames))
        self.socket.send_multipart(frames)

    def connect(self, why):
        if self.socket is not None:
            self.socket.close(linger=0)
        self.socket = self.ctx.socket(zmq.DEALER)
        self.socket.linger = 0
        if self.args.identity:
            self.socket.setsockopt(zmq.IDENTITY, self.args.identity.encode())
        self.socket.connect(self.args.connect)
        self.send([b"", MDPW01, READY, self.args.service.encode()])
        self.connects += 1
        self.liveness = self.args.liveness
        self.heartbeat_at = now_ms() + self.args.heartbeat_interval
        if self.connects == 1:
            log("ready: connected to %s, READY sent for %s" % (self.args.connect, self.args.service))
        else:
            log("reconnected to %s (%s), READY sent for %s (connection %d)" % (
                self.args.connect, why, self.args.service, self.connects))

    def recv(self, reply):
        """Sends `reply` (when not None) to the client of the last request, then waits for the
        next request and returns its body."""
        if reply is not None:
            self.send([b"", MDPW01, REPLY, self.reply_to, b""] + reply)
        interval = self.args.heartbeat_interval
        while True:
            if self.socket.poll(interval, zmq.POLLIN):
                frames = self.socket.recv_multipart()
                if self.args.verbose:
                    log("received %s" % show_frames(frames))
                self.liveness = self.args.liveness
                if len(frames) < 3 or frames[0] != b"" or frames[1] != MDPW01:
                    raise AssertionAbort(show_frames(frames))
                command, rest = frames[2], frames[3:]
                if command == REQUEST:
                    # Unwrap: one address, then the empty frame when there is one.
                    self.reply_to = rest[0] if rest else b""
                    body = rest[1:]
                    if body and body[0] == b"":
                        body = body[1:]
                    return body
                if command == DISCONNECT:
                    log("DISCONNECT from broker")
                    self.connect("after DISCONNECT")
                elif command != HEARTBEAT:
                    log("invalid input message: %s" % show_frames(frames))
            else:
                self.liveness -= 1
                if self.liveness == 0:
                    log("disconnected from broker - retrying in %d ms" % self.args.reconnect)
                    sleep_ms(self.args.reconnect)
                    self.connect("after heartbeat failure")
            if now_ms() > self.heartbeat_at:
                self.send([b"", MDPW01, HEARTBEAT])
                self.heartbeat_at = now_ms() + interval


def main(ctx):
    p = parser("mdworker", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5555", help="broker endpoint")
    p.add_argument("--service", default="echo", help="service to register")
    p.add_argument("--identity", default=None,
                   help="routing identity of every socket; when not given, the broker's ROUTER "
                        "generates one per socket")
    p.add_argument("--heartbeat-interval", type=float, default=2500.0, metavar="MS",
                   help="heartbeat interval, also the poll timeout")
    p.add_argument("--liveness", type=int, default=3, metavar="N",
                   help="HEARTBEAT_LIVENESS: silent polls before the broker is considered dead")
    p.add_argument("--reconnect", type=float, default=2500.0, metavar="MS",
                   help="fixed delay before registering again after a heartbeat failure")
    p.add_argument("--work-ms", type=float, default=0.0, metavar="MS",
                   help="time spent on each request before replying, deaf and mute to the broker")
    p.add_argument("--verbose", action="store_true", help="log every message sent and received")
    add_fault_options(p, overload_ms=3000.0)
    args = p.parse_args()

    session = WorkerSession(ctx, args)
    session.connect("start")
    reply = None
    cycles = 0
    try:
        while True:
            request = session.recv(reply)
            cycles += 1
            log("request %d from %s (%s)" % (cycles, show_identity(session.reply_to),
                                             show_frames(request)))
            decision = fault_decision(args, cycles)
            if decision == "crash":
                log("simulating a crash (request %d)" % cycles)
                return 1
            if decision == "overload":
                log("simulating CPU overload (request %d)" % cycles)
                sleep_ms(args.overload_ms)
            sleep_ms(args.work_ms)
            reply = request  # echo
    except AssertionAbort as why:
        log("assertion failed: invalid message from broker %s (the reference aborts)" % why)
        return 3


if __name__ == "__main__":
    run(main, log)
