"""A one-name DNS server for the image suite: answers A queries for NAME with
ADDRESS, and every other query with NXDOMAIN, on ADDRESS_TO_LISTEN_ON:53/udp.
It prints each question it gets (flushed), so the suite can prove that the
static binary in the image asked DNS, not /etc/hosts.

    python3 tests/images/dns_responder.py LISTEN NAME ADDRESS
"""

import socket
import struct
import sys


def question(packet):
    """(name, qtype, end offset) of the first question in a DNS query."""
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    qtype = struct.unpack("!H", packet[offset + 1 : offset + 3])[0]
    return ".".join(labels).lower(), qtype, offset + 5


def reply(packet, name, address):
    asked, qtype, end = question(packet)
    header = packet[:2]
    if asked == name and qtype == 1:  # A
        answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 5, 4) + socket.inet_aton(address)
        # flags: response, recursion desired and available, no error; one answer
        return header + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + packet[12:end] + answer
    rcode = 0 if asked == name else 3  # no AAAA record, else NXDOMAIN
    return header + struct.pack("!HHHHH", 0x8180 | rcode, 1, 0, 0, 0) + packet[12:end]


def main():
    listen, name, address = sys.argv[1:4]
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((listen, 53))
    print("listening", flush=True)
    server.settimeout(300)  # bounded: the suite kills it sooner
    while True:
        try:
            packet, client = server.recvfrom(512)
        except socket.timeout:
            return
        asked, qtype, _ = question(packet)
        print(f"question {asked} type {qtype}", flush=True)
        server.sendto(reply(packet, name.lower(), address), client)


if __name__ == "__main__":
    main()
