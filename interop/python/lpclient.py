"""Lazy Pirate client peer (the role of the Guide's lpclient), written for interop tests.

A REQ socket connected to --connect sends numbered requests, one frame each holding the ASCII
decimal sequence number (from --first, default 1 as the C reference), and expects the server to
echo that number. It waits --timeout ms for each reply; on a timeout it closes the socket (linger
0), opens a new one, reconnects and resends the same request, --retries sends in all, then
abandons. A reply that is not the expected number is reported as malformed and the client keeps
waiting (a fresh full timeout; no retry is used up).

Exit status: 0 once --count requests succeeded (prints "done: N requests OK"), 2 when it
abandoned ("server seems to be offline, abandoning"), 0 on SIGTERM/SIGINT.
"""

import zmq

from _common import make_logger, parser, run, show_frames

log = make_logger("lpclient")


def parse_sequence(frames):
    if len(frames) != 1:
        return None
    try:
        return int(frames[0].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None


def main(ctx):
    p = parser("lpclient", __doc__)
    p.add_argument("--connect", default="tcp://localhost:5555", help="server endpoint")
    p.add_argument("--timeout", type=float, default=2500.0, metavar="MS",
                   help="time to wait for each reply (REQUEST_TIMEOUT)")
    p.add_argument("--retries", type=int, default=3, metavar="N",
                   help="sends per request before abandoning (REQUEST_RETRIES)")
    p.add_argument("--count", type=int, default=0, metavar="N", help="requests to send, 0 for no limit")
    p.add_argument("--first", type=int, default=1, metavar="N", help="first sequence number")
    args = p.parse_args()

    def open_socket():
        sock = ctx.socket(zmq.REQ)
        sock.linger = 0
        sock.connect(args.connect)
        return sock

    client = open_socket()
    log("ready: connecting to %s" % args.connect)

    succeeded = 0
    sequence = args.first
    while args.count == 0 or succeeded < args.count:
        request = str(sequence).encode("ascii")
        client.send(request)
        retries_left = args.retries
        while True:
            if client.poll(args.timeout, zmq.POLLIN):
                reply = client.recv_multipart()
                if parse_sequence(reply) == sequence:
                    log("server replied OK (%d)" % sequence)
                    succeeded += 1
                    break
                log("malformed reply from server: %s" % show_frames(reply))
                continue
            retries_left -= 1
            if retries_left == 0:
                log("server seems to be offline, abandoning (request %d)" % sequence)
                client.close(linger=0)
                return 2
            log("no response from server, retrying (request %d)" % sequence)
            client.close(linger=0)
            log("reconnecting to server")
            client = open_socket()
            client.send(request)
        sequence += 1
    client.close(linger=0)
    log("done: %d requests OK" % succeeded)
    return 0


if __name__ == "__main__":
    run(main, log)
