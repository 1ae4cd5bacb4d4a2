"""Simple Pirate queue peer (the role of the Guide's spqueue), written for interop tests.

Two ROUTER sockets: --frontend for Lazy Pirate clients, --backend for REQ workers. A FIFO of
ready worker identities, least recently used first. The backend is always read; the frontend only
while a worker is ready (otherwise requests wait inside ZeroMQ). From a worker, the identity and
the empty delimiter are taken off and the worker joins the tail of the list; when the first
remaining frame starts with the byte 0x01 the message is READY and is dropped (the C reference's
one-byte test), else it is a reply [C][""][reply...] and goes to the frontend. A client request
[C][""][request...] is sent to the head worker as [W][""][C][""][request...]. No heartbeats, no
timers.
"""

import zmq

from _common import make_logger, parser, run, show_identity

log = make_logger("spqueue")
READY = 0x01


def unwrap(frames):
    """Pops the first frame (an address), then the empty delimiter after it when there is one."""
    address, rest = frames[0], frames[1:]
    if rest and rest[0] == b"":
        rest = rest[1:]
    return address, rest


def main(ctx):
    p = parser("spqueue", __doc__)
    p.add_argument("--frontend", default="tcp://*:5555", help="endpoint to bind for clients")
    p.add_argument("--backend", default="tcp://*:5556", help="endpoint to bind for workers")
    args = p.parse_args()

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

    workers = []
    while True:
        events = dict((both if workers else backend_only).poll())
        if events.get(backend) == zmq.POLLIN:
            worker, message = unwrap(backend.recv_multipart())
            workers.append(worker)
            if message and message[0][:1] == bytes([READY]):
                log("worker ready %s (%d ready)" % (show_identity(worker), len(workers)))
            else:
                frontend.send_multipart(message)
                log("reply from %s forwarded" % show_identity(worker))
        if events.get(frontend) == zmq.POLLIN:
            request = frontend.recv_multipart()
            worker = workers.pop(0)
            backend.send_multipart([worker, b""] + request)
            log("request dispatched to %s (%d ready)" % (show_identity(worker), len(workers)))


if __name__ == "__main__":
    run(main, log)
