"""Where a webhook may go: not to this host, the cluster's network or any other private address.

A callback URL is user input, and a POST from inside the cluster could otherwise reach what
only the cluster can (MongoDB, nsqd's HTTP API, a cloud's metadata service at 169.254.169.254).
The check is on addresses, not names: a host is resolved when the webhook is sent and every
address it has must be public, and the connection is made only to the addresses checked (the
resolver below is the connector's own), so a name that resolves again to something else
(DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import ipaddress
import socket

from aiohttp.abc import AbstractResolver, ResolveResult

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(OSError):
    """The webhook's host is (or resolves to) an address webhooks may not reach."""


def address_refusal(address: IpAddress) -> str | None:
    """Why a webhook may not go to `address`, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    kinds = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        # Shared (100.64/10), reserved and other special ranges: nothing a webhook should reach.
        ("non-public", not address.is_global),
    )
    for kind, matches in kinds:
        if matches:
            return f"{address} is a {kind} address"
    return None


def literal_refusal(host: str) -> str | None:
    """Why a host written as an address may not be reached; None for a public address or a
    name (a name is checked once resolved). aiohttp never resolves an address, so this is
    the only check such a host gets."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return address_refusal(address)


class PublicOnlyResolver(AbstractResolver):
    """Resolves as `inner` does, and refuses a name any of whose addresses is not public."""

    def __init__(self, inner: AbstractResolver) -> None:
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            refusal = address_refusal(ipaddress.ip_address(result["host"]))
            if refusal is not None:
                raise AddressRefused(f"{host} resolves to {refusal}")
        return results

    async def close(self) -> None:
        await self._inner.close()
