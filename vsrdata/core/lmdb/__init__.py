"""LMDB image stores in the field's formats: keys and meta files, a reader, a streaming writer.

Format written (BasicSR `basicsr/utils/lmdb_util.py` convention, also read by mmagic; see
docs/CONVENTIONS.md):

- a folder `NAME.lmdb/` holding `data.mdb`, `lock.mdb` and `meta_info.txt`;
- value = PNG bytes of the BGR(A) frame as `cv2.imencode('.png', img, [PNG_COMPRESSION, level])`
  writes them (level 1 by default), i.e. `image_io.encode_png`;
- key = ASCII of the frame's path relative to the root without extension (`000/00000000`,
  `00001/0001/im4`), or the mmagic underscore form (`000_00000000`, `00001_0001_4`);
- `meta_info.txt`: one line per value, in write order: `<key>.png (h,w,c) <level>`.

Modules: `keys` (key styles, meta lines, file names of the folder), `reader` (`LmdbReader` for
the BasicSR, mmagic and original-EDVR formats; truncation check), `writer` (`LmdbWriter`:
batched commits, map growth, resume, one builder per DB), `files` (the writer's folder: state,
build marker, map sizes, trim).
"""
