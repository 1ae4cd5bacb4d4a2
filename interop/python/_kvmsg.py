"""The key-value message of the Clone peers (RFC 12/CHP), shared by clonesrv.py and clonecli.py.

Not a peer itself. A message is five frames: [key][sequence][uuid][properties][body], where the
sequence is an unsigned 64-bit big-endian integer, the uuid 16 raw bytes or empty, the properties
"name=value" lines each ended by LF (an empty frame when there are none), and an empty body means
"delete this key". Properties keep their order; setting one that exists removes it and appends
it, as the C reference does. Decoding splits the properties frame on LF, skips empty lines, keeps
a last line without LF and splits each line at its first "=".
"""

import struct
import uuid as uuidlib

HUGZ = b"HUGZ"
KTHXBAI = b"KTHXBAI"
ICANHAZ = b"ICANHAZ?"


class Invalid(Exception):
    """A message that is not a well-formed five-frame key-value message."""


class KvMsg:
    def __init__(self, key=b"", sequence=0, uuid=b"", properties=None, body=b""):
        self.key = key
        self.sequence = sequence
        self.uuid = uuid
        self.properties = list(properties or [])
        self.body = body

    def get_prop(self, name):
        """The value of the first property called `name`, or "" (as the reference)."""
        for key, value in self.properties:
            if key == name:
                return value
        return ""

    def set_prop(self, name, value):
        self.properties = [(k, v) for k, v in self.properties if k != name]
        self.properties.append((name, value))

    def encode(self):
        props = "".join("%s=%s\n" % (k, v) for k, v in self.properties).encode("utf-8")
        return [self.key, struct.pack("!Q", self.sequence), self.uuid, props, self.body]

    @staticmethod
    def decode(frames):
        if len(frames) != 5:
            raise Invalid("expected 5 frames, got %d" % len(frames))
        key, sequence, uuid, props, body = frames
        if len(sequence) != 8:
            raise Invalid("sequence frame of %d bytes" % len(sequence))
        if len(uuid) not in (0, 16):
            raise Invalid("uuid frame of %d bytes" % len(uuid))
        properties = []
        try:
            text = props.decode("utf-8")
        except UnicodeDecodeError:
            raise Invalid("properties are not UTF-8")
        for line in text.split("\n"):
            if line == "":
                continue
            name, sep, value = line.partition("=")
            if not sep or not name:
                raise Invalid("property line without a name: %r" % line)
            properties.append((name, value))
        return KvMsg(key, struct.unpack("!Q", sequence)[0], uuid, properties, body)

    @property
    def is_delete(self):
        return len(self.body) == 0

    def store(self, table):
        """Inserts or replaces the key in `table`, or deletes it for an empty body."""
        if self.is_delete:
            table.pop(self.key, None)
        else:
            table[self.key] = self

    def describe(self):
        props = ",".join("%s=%s" % kv for kv in self.properties)
        return "[%s] seq=%d uuid=%s props={%s} body=%s" % (
            text(self.key), self.sequence, self.uuid.hex() or "-", props, text(self.body))


def new_uuid():
    return uuidlib.uuid4().bytes


def leading_int(value):
    """The integer at the start of `value`, as C atoi reads it (0 when there is none)."""
    value = value.strip()
    digits = ""
    for i, ch in enumerate(value):
        if ch.isdigit() or (i == 0 and ch in "+-"):
            digits += ch
        else:
            break
    try:
        return int(digits)
    except ValueError:
        return 0


def text(frame):
    return frame.decode("utf-8", errors="replace")
