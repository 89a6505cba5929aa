package boltcheck

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// walk checks the B+tree under page id, and every bucket stored in it.
// Every key in the tree must lie in [lo, hi); a nil bound is open. The
// page is read into the buffer for depth, its children into deeper ones,
// so the keys of the pages above stay valid while the walk is below.
func (c *checker) walk(id uint64, lo, hi []byte, depth int) error {
	p, err := c.page(id, depth)
	if err != nil {
		return err
	}
	at := location{page: id}
	switch header(p).flags {
	case branchPage:
		return c.walkBranch(at, p, lo, hi, depth)
	case leafPage:
		return c.walkLeaf(at, p, lo, hi, depth)
	}
	return fmt.Errorf("%v: flags %#x, not a branch or leaf page", at, header(p).flags)
}

// location names a page in messages: a page of the file, or the inline
// page a small bucket keeps in its parent's value.
type location struct {
	page   uint64
	inline bool
}

func (l location) String() string {
	if l.inline {
		return fmt.Sprintf("inline bucket in page %d", l.page)
	}
	return fmt.Sprintf("page %d", l.page)
}

// walkBranch checks a branch page's keys, then walks each child with the
// bounds its key and the next one set.
func (c *checker) walkBranch(at location, p []byte, lo, hi []byte, depth int) error {
	n, err := elements(at, p)
	if err != nil {
		return err
	}
	var prev []byte
	for i := range n {
		e := element(p, i)
		key, err := slice(p, e.start, e.ksize)
		if err != nil {
			return fmt.Errorf("%v element %d: key: %w", at, i, err)
		}
		if err := inOrder(key, i, prev, lo, hi); err != nil {
			return fmt.Errorf("%v element %d: %w", at, i, err)
		}
		prev = key
	}
	for i := range n {
		e := element(p, i)
		key, _ := slice(p, e.start, e.ksize)
		next := hi
		if i+1 < n {
			f := element(p, i+1)
			next, _ = slice(p, f.start, f.ksize)
		}
		if err := c.walk(e.pgid, key, next, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// walkLeaf checks a leaf page's keys and values, and walks the buckets
// stored in it.
func (c *checker) walkLeaf(at location, p []byte, lo, hi []byte, depth int) error {
	n, err := elements(at, p)
	if err != nil {
		return err
	}
	var prev []byte
	for i := range n {
		e := element(p, i)
		kv, err := slice(p, e.start, e.ksize+e.vsize)
		if err != nil {
			return fmt.Errorf("%v element %d: key and value: %w", at, i, err)
		}
		key, value := kv[:e.ksize], kv[e.ksize:]
		if err := inOrder(key, i, prev, lo, hi); err != nil {
			return fmt.Errorf("%v element %d: %w", at, i, err)
		}
		prev = key
		if e.flags&bucketLeaf == 0 {
			continue
		}
		if err := c.walkBucket(at, value, depth); err != nil {
			return fmt.Errorf("bucket %q: %w", key, err)
		}
	}
	return nil
}

// walkBucket checks a bucket, given the value that holds it: the header
// naming its root page, or, for a small bucket, root 0 and the bucket's
// single leaf page inline.
func (c *checker) walkBucket(at location, value []byte, depth int) error {
	if len(value) < bucketHeaderSize {
		return fmt.Errorf("%v: bucket value of %d bytes", at, len(value))
	}
	if root := binary.LittleEndian.Uint64(value); root != 0 {
		return c.walk(root, nil, nil, depth+1)
	}
	inline := value[bucketHeaderSize:]
	if len(inline) < pageHeaderSize {
		return fmt.Errorf("%v: inline bucket of %d bytes", at, len(inline))
	}
	if f := header(inline).flags; f != leafPage {
		return fmt.Errorf("%v: inline bucket with flags %#x, not a leaf page", at, f)
	}
	return c.walkLeaf(location{page: at.page, inline: true}, inline, nil, nil, depth+1)
}

// elements returns how many elements page p holds, after checking that
// their headers fit in it.
func elements(at location, p []byte) (int, error) {
	n := int(header(p).count)
	if pageHeaderSize+n*elementSize > len(p) {
		return 0, fmt.Errorf("%v: %d elements do not fit in %d bytes", at, n, len(p))
	}
	return n, nil
}

// elem is an element header, either kind: a branch element has pgid, a
// leaf element flags and vsize. start is where its key begins in the page.
type elem struct {
	start        uint64
	ksize, vsize uint64
	flags        uint32
	pgid         uint64
}

// element decodes element i of page p; elements made sure it exists. Its
// position is relative to the element itself.
func element(p []byte, i int) elem {
	le := binary.LittleEndian
	off := pageHeaderSize + i*elementSize
	b := p[off : off+elementSize]
	if header(p).flags == branchPage {
		return elem{start: uint64(off) + uint64(le.Uint32(b)), ksize: uint64(le.Uint32(b[4:])), pgid: le.Uint64(b[8:])}
	}
	return elem{flags: le.Uint32(b), start: uint64(off) + uint64(le.Uint32(b[4:])),
		ksize: uint64(le.Uint32(b[8:])), vsize: uint64(le.Uint32(b[12:]))}
}

// slice returns p[start:start+n] if it lies inside p. The sizes come from
// the file and are at most 2^32, so the sum cannot overflow.
func slice(p []byte, start, n uint64) ([]byte, error) {
	if start+n > uint64(len(p)) {
		return nil, fmt.Errorf("%d bytes at offset %d run past the page's %d", n, start, len(p))
	}
	return p[start : start+n], nil
}

// inOrder checks key, the i-th of its page, against the key before it on
// the page (prev) and the bounds the parent page set. These are the order
// rules bbolt's own check applies.
func inOrder(key []byte, i int, prev, lo, hi []byte) error {
	switch {
	case i == 0 && lo != nil && bytes.Compare(key, lo) < 0:
		return fmt.Errorf("key %x is below its parent's key %x", key, lo)
	case i > 0 && bytes.Compare(key, prev) <= 0:
		return fmt.Errorf("key %x does not follow key %x", key, prev)
	case hi != nil && bytes.Compare(key, hi) >= 0:
		return fmt.Errorf("key %x is not below the next key %x in its parent", key, hi)
	}
	return nil
}
