// Package boltcheck checks the structure of a bbolt file before bbolt opens
// it, so that a damaged file is an error rather than the end of the
// process.
//
// bbolt trusts its file. Opened without a synced freelist (as skiff opens
// raft.db), bbolt.Open rebuilds the freelist by walking every page
// reachable from the root, in a goroutine it starts itself. A damaged page
// makes that walk fail an assertion, slice out of range, or touch a page
// past the end of the mapped file (SIGBUS); none of these can be recovered
// by the caller, so the process dies inside Open. Check walks the same
// pages, reading them with pread and checking every offset and length
// against the page and the file, and reports the first damage it finds.
//
// Check follows the invariants bbolt's own consistency check enforces
// (tx_check.go in go.etcd.io/bbolt v1.5.0): every page reachable once and
// below the high-water mark, branch and leaf pages only, keys in order
// within the bounds their parents set. It adds what that check takes for
// granted: that every page lies inside the file and every element inside
// its page. It reads what bbolt.Open reads anyway, so its cost grows with
// the file as Open's does.
package boltcheck

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// ErrCorrupt is wrapped by every error that reports damage in the file, as
// opposed to a failure to read it.
var ErrCorrupt = errors.New("bbolt file damaged")

// The file format, as go.etcd.io/bbolt/internal/common lays it out.
const (
	pageHeaderSize   = 16 // id uint64, flags uint16, count uint16, overflow uint32
	elementSize      = 16 // branch: pos, ksize uint32, pgid uint64; leaf: flags, pos, ksize, vsize uint32
	bucketHeaderSize = 16 // root pgid uint64, sequence uint64

	branchPage   = 0x01
	leafPage     = 0x02
	freelistPage = 0x10
	bucketLeaf   = 0x01 // leaf element flag: the value is a bucket

	magic         = 0xED0CDAED
	version       = 2
	noFreelist    = ^uint64(0)
	metaSize      = 64 // magic ... checksum
	metaChecksum  = 56 // the checksum covers the bytes before it
	maxPageSize   = 1024 << 14
	minPageSize   = 1024
	freelistLarge = 0xFFFF // count that means "the real count is the first id"
)

// maxDepth bounds how deep pages (and buckets in buckets) may nest. A real
// B+tree is a few levels deep; a damaged file could chain thousands of
// pages, and the walk keeps one page buffer per level.
const maxDepth = 256

// Check reads the bbolt file at path and returns nil if bbolt can open it
// without meeting damage, an error wrapping ErrCorrupt that describes the
// first damage found, or the error met reading the file. A missing or
// empty file is not damaged: bbolt creates a new database there.
//
// Check only reads. It must not run while another process writes the
// file; skiff holds the data dir's lock.
func Check(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if st.Size() == 0 {
		return nil
	}
	c := &checker{r: f, size: st.Size()}
	return result(c.check())
}

// check finds the meta page bbolt will use and walks everything it
// reaches, as bbolt.Open does.
func (c *checker) check() error {
	m, err := c.meta()
	if err != nil {
		return err
	}
	c.pageSize, c.hwm = uint64(m.pageSize), m.pgid
	if err := c.checkBounds(m); err != nil {
		return err
	}
	c.seen = make([]uint64, (c.hwm+63)/64)
	if m.freelist != noFreelist {
		if err := c.checkFreelist(m.freelist); err != nil {
			return err
		}
	}
	return c.walk(m.root, nil, nil, 0)
}

// checker walks one file. It is not safe for concurrent use.
type checker struct {
	r        io.ReaderAt
	size     int64
	pageSize uint64
	hwm      uint64   // high-water mark: pages at or past it are unallocated
	seen     []uint64 // bitmap of the pages reached so far
	bufs     [][]byte // one page buffer per depth, reused
}

// The walk reports damage as plain errors, with the path to the damage
// added on the way up, and a failure to read the file as a readError.
// Check tells the two apart once, at the top.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }
func (e readError) Unwrap() error { return e.err }

// result turns what a step of Check returned into Check's answer.
func result(err error) error {
	var re readError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re):
		return re.err
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// checkBounds refuses a file shorter than the pages its meta says are in
// use. bbolt maps the file and would fault on reaching such a page; it
// never shrinks a file, so a short one lost its end.
func (c *checker) checkBounds(m meta) error {
	if m.pgid < 2 || m.pgid > uint64(c.size)/c.pageSize {
		return fmt.Errorf("the file is %d bytes but its meta page (txid %d) counts %d pages of %d bytes",
			c.size, m.txid, m.pgid, c.pageSize)
	}
	return nil
}

// page reads page id with its overflow pages into the buffer for depth,
// after checking that they lie below the high-water mark, that none was
// reached before, and that the header names the page.
func (c *checker) page(id uint64, depth int) ([]byte, error) {
	if depth >= maxDepth {
		return nil, fmt.Errorf("page %d: pages nest more than %d deep", id, maxDepth)
	}
	if id < 2 || id >= c.hwm {
		return nil, fmt.Errorf("page %d: outside the allocated pages [2, %d)", id, c.hwm)
	}
	for len(c.bufs) <= depth {
		c.bufs = append(c.bufs, make([]byte, c.pageSize))
	}
	buf := c.bufs[depth][:c.pageSize]
	if err := c.read(buf, id); err != nil {
		return nil, err
	}
	h := header(buf)
	if h.id != id {
		return nil, fmt.Errorf("page %d: its header names page %d", id, h.id)
	}
	if uint64(h.overflow) >= c.hwm-id {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the allocated pages", id, h.overflow)
	}
	for p := id; p <= id+uint64(h.overflow); p++ {
		if c.seen[p/64]&(1<<(p%64)) != 0 {
			return nil, fmt.Errorf("page %d: reached twice", p)
		}
		c.seen[p/64] |= 1 << (p % 64)
	}
	if h.overflow > 0 {
		n := (uint64(h.overflow) + 1) * c.pageSize
		if uint64(cap(c.bufs[depth])) < n {
			c.bufs[depth] = make([]byte, n)
		}
		buf = c.bufs[depth][:n]
		if err := c.read(buf, id); err != nil {
			return nil, err
		}
	}
	return buf, nil
}

// read fills buf from page id on. checkBounds made sure the file holds
// every page below the high-water mark, so a short read means the file
// changed under the check, or could not be read.
func (c *checker) read(buf []byte, id uint64) error {
	_, err := c.r.ReadAt(buf, int64(id*c.pageSize))
	switch {
	case errors.Is(err, io.EOF):
		return fmt.Errorf("page %d: past the end of the file", id)
	case err != nil:
		return readError{err}
	}
	return nil
}

// checkFreelist checks a freelist page, which bbolt reads at Open when the
// freelist was synced (files written without NoFreelistSync).
func (c *checker) checkFreelist(id uint64) error {
	p, err := c.page(id, 0)
	if err != nil {
		return fmt.Errorf("freelist: %w", err)
	}
	h := header(p)
	if h.flags != freelistPage {
		return fmt.Errorf("freelist page %d: flags %#x", id, h.flags)
	}
	n, first := uint64(h.count), uint64(0)
	if h.count == freelistLarge {
		if len(p) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d: no room for its count", id)
		}
		n, first = binary.LittleEndian.Uint64(p[pageHeaderSize:]), 1
	}
	if n > (uint64(len(p))-pageHeaderSize)/8-first {
		return fmt.Errorf("freelist page %d: %d ids do not fit in %d bytes", id, n, len(p))
	}
	return nil
}

// pageHeader is the start of every page.
type pageHeader struct {
	id       uint64
	flags    uint16
	count    uint16
	overflow uint32
}

func header(p []byte) pageHeader {
	le := binary.LittleEndian
	return pageHeader{id: le.Uint64(p), flags: le.Uint16(p[8:]), count: le.Uint16(p[10:]), overflow: le.Uint32(p[12:])}
}
