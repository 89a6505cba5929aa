package boltcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"math/bits"
)

// meta is the part of a meta page the walk needs.
type meta struct {
	pageSize uint32
	root     uint64 // the root bucket's page
	freelist uint64 // noFreelist unless the freelist was synced
	pgid     uint64 // high-water mark
	txid     uint64
	valid    bool // magic, version and checksum hold
}

// parseMeta decodes the meta in page p (its first 16 bytes are the page
// header).
func parseMeta(p []byte) meta {
	le := binary.LittleEndian
	b := p[pageHeaderSize:]
	h := fnv.New64a()
	_, _ = h.Write(b[:metaChecksum])
	return meta{
		pageSize: le.Uint32(b[8:]),
		root:     le.Uint64(b[16:]),
		freelist: le.Uint64(b[32:]),
		pgid:     le.Uint64(b[40:]),
		txid:     le.Uint64(b[48:]),
		valid:    le.Uint32(b) == magic && le.Uint32(b[4:]) == version && le.Uint64(b[metaChecksum:]) == h.Sum64(),
	}
}

// meta returns the meta page bbolt would use, choosing as bbolt does: the
// one with the higher transaction ID if it is valid, else the other. A
// torn write leaves one meta page invalid, which bbolt is built to
// survive; neither being valid is damage.
func (c *checker) meta() (meta, error) {
	size, err := c.pageSizeOf()
	if err != nil {
		return meta{}, err
	}
	if c.size < 2*int64(size) {
		return meta{}, fmt.Errorf("the file is %d bytes, less than its two meta pages of %d", c.size, size)
	}
	buf := make([]byte, 2*size)
	if _, err := c.r.ReadAt(buf, 0); err != nil {
		return meta{}, readError{err}
	}
	a, b := parseMeta(buf), parseMeta(buf[size:])
	if b.txid > a.txid {
		a, b = b, a
	}
	switch {
	case a.valid:
		return a, nil
	case b.valid:
		return b, nil
	}
	return meta{}, fmt.Errorf("neither meta page is valid")
}

// pageSizeOf finds the page size the way bbolt.Open does: from the first
// meta page, else from the second, looked for at every power of two from
// 1 KiB on. A page size bbolt never writes is damage, even under a valid
// checksum: every offset in the file is a multiple of it.
func (c *checker) pageSizeOf() (uint32, error) {
	buf := make([]byte, 4096) // bbolt reads 4 KiB wherever it looks
	for pos := int64(0); pos <= maxPageSize; pos = max(2*pos, minPageSize) {
		if pos > 0 && pos >= c.size-minPageSize {
			break
		}
		n, err := c.r.ReadAt(buf, pos)
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, readError{err}
		}
		if n < pageHeaderSize+metaSize {
			continue
		}
		if m := parseMeta(buf); m.valid {
			if m.pageSize < minPageSize || m.pageSize > maxPageSize || bits.OnesCount32(m.pageSize) != 1 {
				return 0, fmt.Errorf("meta page at offset %d: page size %d", pos, m.pageSize)
			}
			return m.pageSize, nil
		}
	}
	return 0, fmt.Errorf("neither meta page is valid")
}
