"""Paranoid Pirate queue peer (the role of the Guide's ppqueue, RFC 6/PPP), for interop tests.

Two ROUTER sockets: --frontend for Lazy Pirate clients, --backend for DEALER workers. A list of
ready workers ordered by last activity, each with an expiry of --heartbeat-interval x --liveness.
One poll loop (timeout one interval; the frontend is polled only while a worker is ready):

* any message from a worker makes it ready: it is moved (or added) to the tail with a fresh
  expiry, so a HEARTBEAT from a worker the queue never saw registers it (no READY needed), and a
  busy worker that heartbeats becomes ready again, as in the reference;
* a one-frame worker message is a command: READY 0x01 and HEARTBEAT 0x02 are consumed, anything
  else is logged as invalid; a longer one is a reply [C][""][reply...], sent to the frontend;
* a client request [C][""][request...] goes to the head worker as [W][C][""][request...];
* after each poll: when the heartbeat is due, [W][0x02] goes to every ready worker; then workers
  are expired from the head of the list until one is still alive.
"""

import zmq

from _common import make_logger, now_ms, parser, run, show_identity

log = make_logger("ppqueue")
PPP_READY = 0x01
PPP_HEARTBEAT = 0x02


def main(ctx):
    p = parser("ppqueue", __doc__)
    p.add_argument("--frontend", default="tcp://*:5555", help="endpoint to bind for clients")
    p.add_argument("--backend", default="tcp://*:5556", help="endpoint to bind for workers")
    p.add_argument("--heartbeat-interval", type=float, default=1000.0, metavar="MS",
                   help="HEARTBEAT_INTERVAL, also the poll timeout")
    p.add_argument("--liveness", type=int, default=3, metavar="N",
                   help="HEARTBEAT_LIVENESS: silent intervals before a worker expires")
    args = p.parse_args()
    interval = args.heartbeat_interval

    frontend = ctx.socket(zmq.ROUTER)
    backend = ctx.socket(zmq.ROUTER)
    frontend.linger = backend.linger = 0
    frontend.bind(args.frontend)
    backend.bind(args.backend)
    log("ready: frontend %s, backend %s" % (
        frontend.getsockopt_string(zmq.LAST_ENDPOINT), backend.getsockopt_string(zmq.LAST_ENDPOINT)))

    backend_only = zmq.Poller()
    backend_only.register(backend, zmq.POLLIN)
    both = zmq.Poller()
    both.register(backend, zmq.POLLIN)
    both.register(frontend, zmq.POLLIN)

    # Ready workers, head = least recently active: [identity, expiry]. Python dicts keep order.
    workers = {}
    heartbeat_at = now_ms() + interval
    while True:
        events = dict((both if workers else backend_only).poll(interval))
        if events.get(backend) == zmq.POLLIN:
            frames = backend.recv_multipart()
            identity, message = frames[0], frames[1:]
            if message and message[0] == b"":  # unwrap: a DEALER worker sends no delimiter
                message = message[1:]
            key = identity.hex()
            known = workers.pop(key, None) is not None
            workers[key] = [identity, now_ms() + interval * args.liveness]
            if len(message) == 1:
                first = message[0][0] if message[0] else None  # the reference tests one byte
                kind = {PPP_READY: "READY", PPP_HEARTBEAT: "HEARTBEAT"}.get(first, "invalid")
                if kind == "invalid":
                    log("invalid message from worker %s" % show_identity(identity))
            elif not message:
                kind = "invalid"
                log("invalid message from worker %s" % show_identity(identity))
            else:
                kind = "reply"
            if not known:
                # Logged whenever a worker joins the list, also after each reply (a busy worker
                # is not in the list) and for a worker the queue never saw (PPQ-5).
                log("worker ready %s (on %s, %d ready)" % (show_identity(identity), kind, len(workers)))
            if kind == "reply":
                frontend.send_multipart(message)
                log("reply from %s forwarded" % show_identity(identity))
        if events.get(frontend) == zmq.POLLIN:
            request = frontend.recv_multipart()
            key = next(iter(workers))
            identity, _ = workers.pop(key)
            backend.send_multipart([identity] + request)
            log("request dispatched to %s" % show_identity(identity))

        now = now_ms()
        if now >= heartbeat_at:
            for identity, _ in workers.values():
                backend.send_multipart([identity, bytes([PPP_HEARTBEAT])])
            heartbeat_at = now + interval
        for key in list(workers):
            identity, expiry = workers[key]
            if now < expiry:
                break
            del workers[key]
            log("worker expired %s" % show_identity(identity))


if __name__ == "__main__":
    run(main, log)
