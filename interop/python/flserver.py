"""Freelance server peer (the roles of the Guide's flserver1, flserver2 and flserver3), written for
interop tests. --model chooses the role; the server binds --bind (default tcp://*:5555).

* --model 1 (flserver1): a REP socket that echoes every request unchanged, every frame.
* --model 2 (flserver2): a REP socket. A request must be exactly two frames, [sequence][body]; the
  reply is [sequence]["OK"], the sequence frame sent back unchanged and the body dropped. Anything
  else fails the reference's assertion: this peer logs "assertion failed" and exits with status 3
  (the reference aborts).
* --model 3 (flserver3, RFC 10/FLP): a ROUTER whose routing identity is --identity, set before it
  binds. The default is the bind endpoint with a wildcard host read as localhost
  (tcp://*:5555 gives tcp://localhost:5555, the reference's pair): clients must connect to exactly
  that string. [client]["PING"] is answered [client]["PONG"]; [client][control][rest...] is
  answered [client][control]["OK"], whatever the rest (the reference drops it and does not check
  there is any). A message with no frame after the routing id is logged as invalid and dropped.

Each server handles one request at a time, as the references do. --work-ms delays every reply.
Every answered request is logged ("answered request <sequence or control>"; model 1: "echoed
<frames>"); --verbose also logs pings and every message frame by frame, like the reference's -v.

Exit status: 0 on SIGTERM/SIGINT, 3 after a failed assertion (model 2).
"""

import re

import zmq

from _common import make_logger, parser, run, show_frames, sleep_ms

log = make_logger("flserver")

PING = b"PING"
PONG = b"PONG"
OK = b"OK"


def show_body(frames):
    """Frames for humans: printable ASCII text as is (spaces included), anything else as hex."""
    return "|".join(f.decode("ascii") if f and all(0x20 <= b < 0x7F for b in f) else (f.hex().upper() or "''")
                    for f in frames)


def default_identity(bind):
    """The endpoint clients connect to: the bind endpoint, a wildcard host read as localhost."""
    return re.sub(r"^tcp://(\*|0\.0\.0\.0):", "tcp://localhost:", bind)


def serve_rep(server, args):
    """Models 1 and 2: a REP socket, one request at a time."""
    while True:
        request = server.recv_multipart()
        if args.verbose:
            log("received %s" % show_frames(request))
        if args.model == 1:
            reply = request
            log("echoed %s" % show_body(request))
        else:
            if len(request) != 2:
                log("assertion failed: expected [sequence][body], got %s" % show_frames(request))
                return 3
            reply = [request[0], OK]
            log("answered request %s" % show_body(request[:1]))
        sleep_ms(args.work_ms)
        if args.verbose:
            log("sending %s" % show_frames(reply))
        server.send_multipart(reply)


def serve_flp(server, args):
    """Model 3: a ROUTER addressed by its identity (RFC 10/FLP)."""
    while True:
        message = server.recv_multipart()
        if args.verbose:
            log("received %s" % show_frames(message))
        if len(message) < 2:
            log("invalid message: %s" % show_frames(message))
            continue
        client, control = message[0], message[1]
        if control == PING:
            reply = [client, PONG]
            if args.verbose:
                log("ping from %s" % client.hex().upper())
        else:
            sleep_ms(args.work_ms)
            reply = [client, control, OK]
            log("answered request %s" % show_body([control]))
        if args.verbose:
            log("sending %s" % show_frames(reply))
        server.send_multipart(reply)


def main(ctx):
    p = parser("flserver", __doc__)
    p.add_argument("--model", type=int, choices=(1, 2, 3), required=True,
                   help="the Freelance model whose server to play")
    p.add_argument("--bind", default="tcp://*:5555", help="endpoint to bind")
    p.add_argument("--identity", default=None,
                   help="model 3: the routing identity; None means --bind with a * host read as localhost")
    p.add_argument("--work-ms", type=float, default=0.0, metavar="MS",
                   help="time every request takes before the reply")
    p.add_argument("--verbose", action="store_true", help="log every message, pings included")
    args = p.parse_args()
    if args.identity is not None and args.model != 3:
        p.error("--identity is only used by model 3")

    if args.model == 3:
        server = ctx.socket(zmq.ROUTER)
        identity = args.identity if args.identity is not None else default_identity(args.bind)
        server.setsockopt(zmq.IDENTITY, identity.encode())
    else:
        server = ctx.socket(zmq.REP)
        identity = None
    server.linger = 0
    server.bind(args.bind)
    endpoint = server.getsockopt_string(zmq.LAST_ENDPOINT)
    if identity is None:
        log("ready: model %d, bound %s" % (args.model, endpoint))
        return serve_rep(server, args)
    log("ready: model 3, bound %s, identity %s" % (endpoint, identity))
    return serve_flp(server, args)


if __name__ == "__main__":
    run(main, log)
