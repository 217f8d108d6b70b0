"""Port leases: unique while held, returned on release, ports held by others skipped, exhaustion named."""

import socket

import pytest

from mcpsim.pool.errors import PortsExhausted
from mcpsim.pool.ports import PortAllocator, parse_port_range


def test_leases_are_unique_until_released_and_round_robin():
    ports = PortAllocator(23300, 23303)
    leased = [ports.lease() for _ in range(4)]
    assert sorted(leased) == [23300, 23301, 23302, 23303]
    with pytest.raises(PortsExhausted, match="no free port in 23300-23303: 4 leased"):
        ports.lease()
    ports.release(23301)
    assert ports.lease() == 23301
    ports.release(23300)
    ports.release(23302)
    assert ports.lease() == 23302  # the next in turn, not the most recently freed


def test_ports_bound_by_other_programs_are_skipped():
    with socket.socket() as held:
        held.bind(("127.0.0.1", 23310))
        held.listen()
        ports = PortAllocator(23310, 23311)
        assert ports.lease() == 23311
        with pytest.raises(PortsExhausted, match="1 leased to instances, 1 held by other programs"):
            ports.lease()


@pytest.mark.parametrize("text", ["10-5", "abc", "1-70000", "0-10", "100"])
def test_bad_port_ranges_are_refused(text):
    with pytest.raises(ValueError):
        parse_port_range(text)


def test_port_range_parses():
    assert parse_port_range("10000-11000") == (10000, 11000)
