"""Pure text helpers where the correctness of mail handling lives.

Nothing here opens a socket, reads a file or loads configuration: every
function takes plain values (and policy dataclasses from
:mod:`mailadmin.config.model`) and is tested with large tables taken from the
SPEC sentences.

- :mod:`.addresses`  addr-spec syntax, header address lists, the SPEC §4
  boundary-suffix match of sender entries
- :mod:`.headers`    RFC 2047 decoding for the charsets Japanese mail uses,
  NFKC/casefold matching (SPEC §4)
- :mod:`.entries`    the one validator per entry type (SPEC §1, §3, §4, §5)
- :mod:`.rfc3834`    when an auto-reply must not be sent (SPEC §6, RFC 3834, RFC 5230)
- :mod:`.mime_parts` leaf MIME parts and their removal (SPEC §7)
- :mod:`.compose`    auto-replies, virus reports, quarantine notices (SPEC §6, §7, §8)
- :mod:`.rewrite`    changes to a received message's raw header: spam tagging
  (SPEC §8), added and removed fields, the header difference the milter sends
"""
