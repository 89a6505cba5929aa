package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"unsafe"
)

// Snapshot format, version 1. All integers are unsigned varints
// (encoding/binary) in their shortest form, except the trailer:
//
//	magic    "SKIFFSNP"
//	version  1 byte (formatVersion)
//	revision uvarint
//	count    uvarint, number of entries
//	bytes    uvarint, sum of len(key)+len(value) over all entries
//	count times, in strictly ascending key order:
//	    len(key) uvarint, key, len(value) uvarint, value,
//	    CreateRevision, ModRevision, Version uvarint
//	crc      4 bytes little-endian, CRC-32C (Castagnoli) of all bytes above
//
// and nothing after it. The encoding of a view is unique, so a decoded
// snapshot re-encodes to the same bytes. count and bytes are in the header so
// that the decoder can bound every length it reads by what is left instead
// of trusting it.
const (
	snapshotMagic = "SKIFFSNP"
	formatVersion = 1
	trailerLen    = 4
)

// Limits on one key and one value. They are far above any configured
// MaxKeySize and MaxValueSize; they exist so that a corrupt length cannot
// make the decoder reserve gigabytes, and WriteTo refuses to write what
// ReadView would refuse to read.
const (
	maxKeyLen   = 16 << 20
	maxValueLen = 256 << 20
)

// castagnoli is hardware-accelerated on amd64 and arm64, so checksumming
// costs little next to copying the bytes.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

const (
	ioBufSize = 64 << 10 // encoder and decoder buffer
	slabSize  = 1 << 20  // arena block holding decoded keys and values
	// Fields longer than this get their own allocation, so that a slab
	// never wastes more than this at its tail.
	maxSlabField = slabSize / 16
)

// WriteTo writes the view to w in the snapshot format (see ReadView). It
// buffers internally, in large writes, and holds no lock: the view is
// immutable, so writes to the store may go on meanwhile. It returns the
// number of bytes written and the first error, if any.
func (v *View) WriteTo(w io.Writer) (int64, error) {
	e := &encoder{w: w, buf: make([]byte, 0, ioBufSize)}
	e.buf = append(e.buf, snapshotMagic...)
	e.buf = append(e.buf, formatVersion)
	e.buf = binary.AppendUvarint(e.buf, v.rev)
	e.buf = binary.AppendUvarint(e.buf, uint64(v.tree.Len()))
	e.buf = binary.AppendUvarint(e.buf, uint64(v.bytes))
	v.tree.Ascend(func(it item) bool {
		ent := it.entry()
		e.entry(&ent)
		return e.err == nil
	})
	e.flush()
	if e.err != nil {
		return e.n, e.err
	}
	e.buf = binary.LittleEndian.AppendUint32(e.buf, e.crc)
	e.write()
	return e.n, e.err
}

// encoder accumulates output in buf and writes it in ioBufSize pieces,
// checksumming each piece once, so the cost per entry is a few appends
// whether or not w is buffered.
type encoder struct {
	w   io.Writer
	buf []byte
	crc uint32 // of everything flushed
	n   int64
	err error
}

func (e *encoder) entry(ent *Entry) {
	if len(ent.Key) > maxKeyLen || len(ent.Value) > maxValueLen {
		e.err = fmt.Errorf("store: write snapshot: key %.64q: %d-byte key or %d-byte value over the limit",
			ent.Key, len(ent.Key), len(ent.Value))
		return
	}
	e.reserve(binary.MaxVarintLen64)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(ent.Key)))
	appendField(e, ent.Key)
	e.reserve(binary.MaxVarintLen64)
	e.buf = binary.AppendUvarint(e.buf, uint64(len(ent.Value)))
	appendField(e, ent.Value)
	e.reserve(3 * binary.MaxVarintLen64)
	e.buf = binary.AppendUvarint(e.buf, ent.CreateRevision)
	e.buf = binary.AppendUvarint(e.buf, ent.ModRevision)
	e.buf = binary.AppendUvarint(e.buf, ent.Version)
}

// appendField appends s, flushing as the buffer fills, so that fields of
// any size go through the same buffer.
func appendField[T string | []byte](e *encoder, s T) {
	for len(s) > 0 && e.err == nil {
		if len(e.buf) == cap(e.buf) {
			e.flush()
		}
		n := copy(e.buf[len(e.buf):cap(e.buf)], s)
		e.buf = e.buf[:len(e.buf)+n]
		s = s[n:]
	}
}

// reserve makes room for n more bytes in buf.
func (e *encoder) reserve(n int) {
	if cap(e.buf)-len(e.buf) < n {
		e.flush()
	}
}

// flush checksums and writes buf.
func (e *encoder) flush() {
	e.crc = crc32.Update(e.crc, castagnoli, e.buf)
	e.write()
}

// write writes buf without checksumming it (the trailer is not covered).
func (e *encoder) write() {
	if e.err != nil || len(e.buf) == 0 {
		return
	}
	n, err := e.w.Write(e.buf)
	e.n += int64(n)
	if err == nil && n < len(e.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		e.err = fmt.Errorf("store: write snapshot: %w", err)
	}
	e.buf = e.buf[:0]
}

// ReadView decodes a snapshot written by View.WriteTo, reading r to EOF.
//
// Any input that is not exactly one intact snapshot (truncated, with a bad
// checksum, an unknown version, malformed or out-of-order entries, or bytes
// after the end) yields an error wrapping ErrCorrupt. An error from r other
// than io.EOF is returned wrapped, and does not wrap ErrCorrupt. ReadView
// reads r in large pieces, so r need not be buffered.
//
// Keys and values are copied into shared blocks of up to 1 MiB (see the
// package documentation), and a second goroutine builds the tree while r is
// read; it has finished when ReadView returns.
func ReadView(r io.Reader) (*View, error) {
	d := &decoder{r: r, buf: make([]byte, ioBufSize)}
	return d.view()
}

// decoder reads r through buf. The bytes buf[:hashed] have been added to
// crc; buf[pos:end] are read but not consumed.
type decoder struct {
	r                  io.Reader
	buf                []byte
	pos, end, hashed   int
	crc                uint32
	keys, values       arena
	remCount, remBytes uint64 // what the header says is still to come
	prevKey            string
	havePrev           bool
}

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// view decodes the whole input, handing entries to the builder as they
// come.
func (d *decoder) view() (*View, error) {
	rev, err := d.header()
	if err != nil {
		return nil, err
	}
	v := &View{tree: newTree(), rev: rev, bytes: int64(d.remBytes)}
	p, batch := newPipeline(v.tree, d.remCount)
	for d.remCount > 0 && err == nil {
		var e Entry
		if e, err = d.entry(); err == nil {
			batch = append(batch, e)
			if len(batch) == cap(batch) {
				batch = p.next(batch)
			}
		}
	}
	p.finish(batch)
	if err != nil {
		return nil, err
	}
	if d.remBytes != 0 {
		return nil, corruptf("entries hold %d bytes fewer than the header says", d.remBytes)
	}
	if err := d.trailer(); err != nil {
		return nil, err
	}
	return v, nil
}

// header reads everything before the first entry and returns the revision.
func (d *decoder) header() (uint64, error) {
	if err := d.fill(len(snapshotMagic) + 1); err != nil {
		return 0, err
	}
	if string(d.buf[d.pos:d.pos+len(snapshotMagic)]) != snapshotMagic {
		return 0, corruptf("bad magic %q", d.buf[d.pos:d.pos+len(snapshotMagic)])
	}
	d.pos += len(snapshotMagic)
	if ver := d.buf[d.pos]; ver != formatVersion {
		return 0, corruptf("unknown format version %d", ver)
	}
	d.pos++
	var rev uint64
	for _, p := range []*uint64{&rev, &d.remCount, &d.remBytes} {
		x, err := d.uvarint()
		if err != nil {
			return 0, err
		}
		*p = x
	}
	// Only the first key may be empty, so every entry but one carries at
	// least one byte.
	if d.remBytes > math.MaxInt64 || d.remCount > d.remBytes+1 {
		return 0, corruptf("header claims %d entries in %d bytes", d.remCount, d.remBytes)
	}
	return rev, nil
}

// entry reads the next entry and checks it against the previous one and
// the header's totals.
func (d *decoder) entry() (Entry, error) {
	var e Entry
	kb, err := d.field("key", maxKeyLen, &d.keys)
	if err != nil {
		return e, err
	}
	if len(kb) > 0 {
		// kb is never written again: it lives in an arena region that is
		// handed out once, or in its own allocation.
		e.Key = unsafe.String(&kb[0], len(kb))
	}
	if d.havePrev && e.Key <= d.prevKey {
		return e, corruptf("key %.64q follows %.64q", e.Key, d.prevKey)
	}
	d.prevKey, d.havePrev = e.Key, true
	if e.Value, err = d.field("value", maxValueLen, &d.values); err != nil {
		return e, err
	}
	for _, p := range []*uint64{&e.CreateRevision, &e.ModRevision, &e.Version} {
		if *p, err = d.uvarint(); err != nil {
			return e, err
		}
	}
	d.remCount--
	return e, nil
}

// field reads a length-prefixed byte string into the arena. The length is
// checked against limit and against the bytes the header has left, before
// anything is allocated. An empty field is nil.
func (d *decoder) field(what string, limit uint64, a *arena) ([]byte, error) {
	n, err := d.uvarint()
	if err != nil {
		return nil, err
	}
	if n > limit || n > d.remBytes {
		return nil, corruptf("%s length %d exceeds limit %d or remaining %d bytes", what, n, limit, d.remBytes)
	}
	d.remBytes -= n
	switch {
	case n == 0:
		return nil, nil
	case n > maxSlabField:
		return d.readLarge(int(n))
	}
	b := a.alloc(int(n))
	return b, d.read(b)
}

// readLarge reads an n-byte field into its own allocation, growing it as
// data arrives, so that a corrupt length costs at most about twice the
// bytes actually present rather than n.
func (d *decoder) readLarge(n int) ([]byte, error) {
	b := make([]byte, 0, maxSlabField)
	for len(b) < n {
		if len(b) == cap(b) {
			b = slices.Grow(b, min(n, 2*cap(b))-len(b))
		}
		old := len(b)
		b = b[:min(n, cap(b))]
		if err := d.read(b[old:]); err != nil {
			return nil, err
		}
	}
	return b[:n:n], nil
}

// uvarint reads one unsigned varint in its shortest form.
func (d *decoder) uvarint() (uint64, error) {
	for {
		x, n := binary.Uvarint(d.buf[d.pos:d.end])
		switch {
		case n < 0:
			return 0, corruptf("varint overflows 64 bits")
		case n > 1 && d.buf[d.pos+n-1] == 0:
			return 0, corruptf("varint not in shortest form")
		case n > 0:
			d.pos += n
			return x, nil
		}
		// All buffered bytes (fewer than MaxVarintLen64) continue the varint.
		if err := d.fill(d.end - d.pos + 1); err != nil {
			return 0, err
		}
	}
}

// read fills p from the stream, reading long tails directly into p.
func (d *decoder) read(p []byte) error {
	n := copy(p, d.buf[d.pos:d.end])
	d.pos += n
	p = p[n:]
	if len(p) == 0 {
		return nil
	}
	if len(p) < len(d.buf)/2 {
		if err := d.fill(len(p)); err != nil {
			return err
		}
		d.pos += copy(p, d.buf[d.pos:d.end])
		return nil
	}
	// The buffer is empty: checksum what was consumed from it, then p.
	d.hash()
	if _, err := io.ReadFull(d.r, p); err != nil {
		return readErr(err)
	}
	d.crc = crc32.Update(d.crc, castagnoli, p)
	return nil
}

// hash adds the consumed, not yet checksummed bytes of buf to crc.
func (d *decoder) hash() {
	d.crc = crc32.Update(d.crc, castagnoli, d.buf[d.hashed:d.pos])
	d.hashed = d.pos
}

// fill makes at least n (<= len(buf)) bytes available in buf[pos:end].
func (d *decoder) fill(n int) error {
	if d.end-d.pos >= n {
		return nil
	}
	d.hash()
	d.end = copy(d.buf, d.buf[d.pos:d.end])
	d.pos, d.hashed = 0, 0
	m, err := io.ReadAtLeast(d.r, d.buf[d.end:], n-d.end)
	d.end += m
	if err != nil {
		return readErr(err)
	}
	return nil
}

// readErr classifies an error from r: running out of input means the
// snapshot is truncated; anything else is the reader's own failure.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corruptf("truncated")
	}
	return fmt.Errorf("store: read snapshot: %w", err)
}

// trailer checks the checksum and that the input ends right after it.
func (d *decoder) trailer() error {
	d.hash()
	if err := d.fill(trailerLen); err != nil {
		return err
	}
	got := binary.LittleEndian.Uint32(d.buf[d.pos:])
	if got != d.crc {
		return corruptf("checksum %08x, computed %08x", got, d.crc)
	}
	d.pos += trailerLen
	if d.pos < d.end {
		return corruptf("data after the end")
	}
	switch _, err := io.ReadAtLeast(d.r, d.buf[:1], 1); {
	case errors.Is(err, io.EOF):
		return nil
	case err == nil:
		return corruptf("data after the end")
	default:
		return fmt.Errorf("store: read snapshot: %w", err)
	}
}
