"""Id ranges the sample generators share, so that sales and entries point at members and
prospects the samples of the same ``records`` and ``seed`` hold (``evo-frames synth``).

The record of index ``i`` has id ``<ENTITY>_ID0 + i``.
"""

MEMBER_ID0 = 1_000_001
PROSPECT_ID0 = 3_300_001
SALE_ID0 = 88_000_001
