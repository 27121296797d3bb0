package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"

	bolt "go.etcd.io/bbolt"
)

// A posting list is the ids of an owner's entries that share something: a
// 'with' JID, a word of their text. It is kept in chunks, each a key
// prefix+first id (8 bytes big-endian) whose value holds the chunk's other
// ids, ascending, each as the difference from the one before:
//
//	uvarint(Δms<<1 | s)  [uvarint(seq) when s is 1]
//
// where Δms is the difference of the ids' milliseconds and seq the id's low
// 16 bits (most ids have seq 0: one entry per millisecond). A message a
// minute apart from the previous one with the same word costs 3 bytes, so
// the index of a 1,000,000-message archive is a few tens of MB, where a key
// per (word, id) would cost ~50 bytes each in bbolt (no prefix compression,
// 16 bytes of page element per key). An empty value is a chunk of one id:
// the 'with' index of the first Log layout, a key per id with an empty
// value, reads as such chunks unchanged.
//
// Ids are appended in ascending order almost always (Append), so a chunk
// grows at its end until maxChunk bytes, and a new one starts.
const maxChunk = 240

// errCorruptChunk: a posting chunk that does not decode.
var errCorruptChunk = errors.New("storage: corrupt index chunk")

// appendDelta appends the encoding of id following prev (id > prev).
func appendDelta(buf []byte, prev, id LogID) []byte {
	dms := uint64(id>>16) - uint64(prev>>16)
	seq := uint64(id & 0xffff)
	if seq == 0 {
		return binary.AppendUvarint(buf, dms<<1)
	}
	buf = binary.AppendUvarint(buf, dms<<1|1)
	return binary.AppendUvarint(buf, seq)
}

// decodeChunk appends the ids of the chunk first, v to ids.
func decodeChunk(ids []LogID, first LogID, v []byte) ([]LogID, error) {
	ids = append(ids, first)
	prev := first
	for len(v) > 0 {
		x, n := binary.Uvarint(v)
		if n <= 0 {
			return ids, errCorruptChunk
		}
		v = v[n:]
		ms := uint64(prev>>16) + x>>1
		var seq uint64
		if x&1 != 0 {
			if seq, n = binary.Uvarint(v); n <= 0 || seq > 0xffff {
				return ids, errCorruptChunk
			}
			v = v[n:]
		}
		id := LogID(ms<<16 | seq)
		if id <= prev || ms > maxLogMillis {
			return ids, errCorruptChunk
		}
		ids = append(ids, id)
		prev = id
	}
	return ids, nil
}

// encodeChunk is the value of the chunk holding ids (ascending, at least one).
func encodeChunk(buf []byte, ids []LogID) []byte {
	for i := 1; i < len(ids); i++ {
		buf = appendDelta(buf, ids[i-1], ids[i])
	}
	return buf
}

// chunkKey is prefix+id, in a new slice.
func chunkKey(prefix []byte, id LogID) []byte {
	k := make([]byte, len(prefix), len(prefix)+8)
	copy(k, prefix)
	return binary.BigEndian.AppendUint64(k, uint64(id))
}

// chunkFirst returns the first id of the chunk whose key is k, if k is a
// chunk key of prefix.
func chunkFirst(prefix, k []byte) (LogID, bool) {
	if len(k) != len(prefix)+8 || !bytes.HasPrefix(k, prefix) {
		return 0, false
	}
	return LogID(binary.BigEndian.Uint64(k[len(prefix):])), true
}

// postings edits posting lists in one write transaction. Its scratch
// slice is reused from one edit to the next; what it Puts is not (bbolt
// keeps the slices given to Put until the commit).
type postings struct {
	b   *bolt.Bucket
	c   *bolt.Cursor // every edit starts with a Seek, which starts from the root
	ids []LogID
}

func (p *postings) cursor() *bolt.Cursor {
	if p.c == nil {
		p.c = p.b.Cursor()
	}
	return p.c
}

// add inserts id into the list prefix. Appending at the end, the usual
// case, rewrites only the last chunk.
func (p *postings) add(prefix []byte, id LogID) error {
	key := chunkKey(prefix, id)
	c := p.cursor()
	k, _ := c.Seek(key)
	if bytes.Equal(k, key) {
		return nil // already there
	}
	var v []byte
	if k == nil {
		k, v = c.Last()
	} else {
		k, v = c.Prev()
	}
	first, ok := chunkFirst(prefix, k)
	if !ok {
		// No chunk starts before id: a chunk of its own.
		return p.b.Put(key, nil)
	}
	var err error
	if p.ids, err = decodeChunk(p.ids[:0], first, v); err != nil {
		return err
	}
	last := p.ids[len(p.ids)-1]
	if id > last {
		if len(v) >= maxChunk {
			return p.b.Put(key, nil)
		}
		// bbolt keeps the slices given to Put until the commit: new ones.
		value := appendDelta(append(make([]byte, 0, len(v)+binary.MaxVarintLen32*2), v...), last, id)
		return p.b.Put(bytes.Clone(k), value)
	}
	i, found := slices.BinarySearch(p.ids, id)
	if found {
		return nil
	}
	p.ids = slices.Insert(p.ids, i, id)
	return p.put(prefix, bytes.Clone(k), p.ids)
}

// put writes ids as the chunk with key k, split in two when too big.
func (p *postings) put(prefix, k []byte, ids []LogID) error {
	value := encodeChunk(nil, ids)
	if len(value) <= maxChunk || len(ids) < 2 {
		return p.b.Put(k, value)
	}
	half := len(ids) / 2
	if err := p.b.Put(k, encodeChunk(nil, ids[:half])); err != nil {
		return err
	}
	return p.b.Put(chunkKey(prefix, ids[half]), encodeChunk(nil, ids[half:]))
}

// remove deletes ids (ascending) from the list prefix; ids not in it are
// ignored. Each chunk holding some of them is rewritten once.
func (p *postings) remove(prefix []byte, ids []LogID) error {
	for len(ids) > 0 {
		// The chunk that would hold ids[0]: the last starting at or before it.
		c := p.cursor() // Seek below: writes invalidate a cursor's position, not the cursor
		key := chunkKey(prefix, ids[0])
		k, v := c.Seek(key)
		if !bytes.Equal(k, key) {
			if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		}
		first, ok := chunkFirst(prefix, k)
		if !ok {
			// ids[0] is before every chunk: skip to the first chunk's first id.
			if first, ok = chunkFirst(prefix, firstKey(c, prefix)); !ok {
				return nil // the list is empty
			}
			j, _ := slices.BinarySearch(ids, first)
			ids = ids[j:]
			continue
		}
		var err error
		if p.ids, err = decodeChunk(p.ids[:0], first, v); err != nil {
			return err
		}
		last := p.ids[len(p.ids)-1]
		j := len(ids) // the ids to remove that fall in this chunk: ids[:j]
		if last != ^LogID(0) {
			j, _ = slices.BinarySearch(ids, last+1)
		}
		if j == 0 {
			ids = ids[1:] // between this chunk and the next: not in the list
			continue
		}
		doomed := ids[:j]
		ids = ids[j:]
		n := len(p.ids)
		kept := slices.DeleteFunc(p.ids, func(id LogID) bool {
			_, found := slices.BinarySearch(doomed, id)
			return found
		})
		if len(kept) == n {
			continue
		}
		k = bytes.Clone(k)
		if len(kept) == 0 || kept[0] != first {
			if err := p.b.Delete(k); err != nil {
				return err
			}
			if len(kept) == 0 {
				continue
			}
			k = chunkKey(prefix, kept[0])
		}
		if err := p.b.Put(k, encodeChunk(nil, kept)); err != nil {
			return err
		}
	}
	return nil
}

// firstKey is the first key at or after prefix.
func firstKey(c *bolt.Cursor, prefix []byte) []byte {
	k, _ := c.Seek(prefix)
	return k
}

// postCursor walks one posting list in a read transaction, a decoded chunk
// at a time. The bbolt cursor stays on the decoded chunk.
type postCursor struct {
	c      *bolt.Cursor
	prefix []byte
	ids    []LogID // the decoded chunk; empty when none is loaded
	loads  *int    // chunks decoded, for the query's budget
	err    error
}

// load decodes the chunk k, v, reporting whether k is one of the list's.
func (pc *postCursor) load(k, v []byte) bool {
	first, ok := chunkFirst(pc.prefix, k)
	if !ok {
		pc.ids = pc.ids[:0]
		return false
	}
	*pc.loads++
	var err error
	if pc.ids, err = decodeChunk(pc.ids[:0], first, v); err != nil && pc.err == nil {
		pc.err = err
	}
	return true
}

// ge returns the list's smallest id >= x, or 0 when there is none.
func (pc *postCursor) ge(x LogID) LogID {
	if n := len(pc.ids); n > 0 {
		if pc.ids[0] <= x && x <= pc.ids[n-1] {
			i, _ := slices.BinarySearch(pc.ids, x)
			return pc.ids[i]
		}
		if x > pc.ids[n-1] {
			// Reading on: the next chunk is the likely one.
			if pc.load(pc.c.Next()) && x <= pc.ids[len(pc.ids)-1] {
				i, _ := slices.BinarySearch(pc.ids, x)
				return pc.ids[i]
			}
		}
	}
	key := chunkKey(pc.prefix, x)
	k, v := pc.c.Seek(key)
	if bytes.Equal(k, key) {
		pc.load(k, v)
		return x
	}
	// The chunk before may hold ids >= x.
	if k == nil {
		k, v = pc.c.Last()
	} else {
		k, v = pc.c.Prev()
	}
	if pc.load(k, v) && x <= pc.ids[len(pc.ids)-1] {
		i, _ := slices.BinarySearch(pc.ids, x)
		return pc.ids[i]
	}
	if _, ok := chunkFirst(pc.prefix, k); ok {
		k, v = pc.c.Next()
	} else {
		k, v = pc.c.Seek(key)
	}
	if pc.load(k, v) {
		return pc.ids[0]
	}
	return 0
}

// le returns the list's largest id <= x, or 0 when there is none.
func (pc *postCursor) le(x LogID) LogID {
	if n := len(pc.ids); n > 0 {
		if pc.ids[0] <= x && x <= pc.ids[n-1] {
			return pc.ids[lastLE(pc.ids, x)]
		}
		if x < pc.ids[0] {
			if pc.load(pc.c.Prev()) && pc.ids[0] <= x {
				return pc.ids[lastLE(pc.ids, x)]
			}
		}
	}
	key := chunkKey(pc.prefix, x)
	k, v := pc.c.Seek(key)
	if bytes.Equal(k, key) {
		pc.load(k, v)
		return x
	}
	if k == nil {
		k, v = pc.c.Last()
	} else {
		k, v = pc.c.Prev()
	}
	if pc.load(k, v) {
		return pc.ids[lastLE(pc.ids, x)]
	}
	return 0
}

// lastLE is the index of the last of ids (ascending, ids[0] <= x) <= x.
func lastLE(ids []LogID, x LogID) int {
	i, found := slices.BinarySearch(ids, x)
	if found {
		return i
	}
	return i - 1
}
