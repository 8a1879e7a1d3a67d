"""LMDB key styles: the list of choices, in a module that imports nothing (no lmdb, no numpy).

- ``basicsr``: the frame's path relative to the root without extension, '/'-separated
  (`000/00000000`, `00001/0001/im4`), as BasicSR writes and reads them.
- ``mmagic``: the same parts joined by '_' (`000_00000000`; Vimeo90K `00001_0001_4`).

`lmdb_store.make_key` builds keys in these styles (docs/CONVENTIONS.md#lmdb).
"""

KEY_STYLES = ("basicsr", "mmagic")
