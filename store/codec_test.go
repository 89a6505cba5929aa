package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// viewOf returns a view of n keys "k/%04d" with values of varied length,
// some empty, committed at rev.
func viewOf(t testing.TB, n int, rev uint64) *View {
	t.Helper()
	s := New()
	txn := s.Txn()
	for i := range n {
		txn.Put(fmt.Sprintf("k/%04d", i), bytes.Repeat([]byte{byte(i)}, i%37), uint64(i%5+1))
	}
	txn.Commit(rev)
	return s.View()
}

func encode(t testing.TB, v *View) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := v.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	return buf.Bytes()
}

// roundTrip encodes v, decodes it, checks the result against v and checks
// that it encodes to the same bytes.
func roundTrip(t testing.TB, v *View) *View {
	t.Helper()
	data := encode(t, v)
	got, err := ReadView(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("ReadView: %v", err)
	}
	if diff := diffViews(got, v); diff != "" {
		t.Fatalf("decoded view differs: %s", diff)
	}
	if again := encode(t, got); !bytes.Equal(again, data) {
		t.Fatalf("decoded view encodes to %d different bytes, want the %d decoded", len(again), len(data))
	}
	return got
}

// diffViews describes the first difference between two views, or returns
// "" if they are equal.
func diffViews(got, want *View) string {
	if got.Revision() != want.Revision() || got.Len() != want.Len() || got.Bytes() != want.Bytes() {
		return fmt.Sprintf("Revision, Len, Bytes = %d, %d, %d, want %d, %d, %d",
			got.Revision(), got.Len(), got.Bytes(), want.Revision(), want.Len(), want.Bytes())
	}
	var diff string
	want.Range("", "", func(w Entry) bool {
		if g, ok := got.Get(w.Key); !ok || !sameEntry(g, w) {
			diff = fmt.Sprintf("Get(%q) = %s, want %s", w.Key, fmtEntry(g, ok), fmtEntry(w, true))
		}
		return diff == ""
	})
	return diff
}

func TestCodecRoundTrip(t *testing.T) {
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	tests := []struct {
		name    string
		entries []Entry // put in this order, each at its ModRevision
		rev     uint64
	}{
		{name: "empty"},
		{name: "empty at revision", rev: 1 << 40},
		{name: "empty key and values", rev: 3, entries: []Entry{
			{Key: "", Value: []byte("root"), ModRevision: 1},
			{Key: "a", ModRevision: 2},
			{Key: "b", Value: []byte{}, ModRevision: 3},
		}},
		{name: "binary", rev: 2, entries: []Entry{
			{Key: "bin", Value: allBytes, ModRevision: 1},
			{Key: "nul\x00key\xff", Value: []byte{0}, ModRevision: 2},
			{Key: "ключ/値", Value: []byte("utf-8"), ModRevision: 2},
		}},
		{name: "large values", rev: 9, entries: []Entry{
			{Key: "a", Value: bytes.Repeat([]byte("a"), maxSlabField+1), ModRevision: 9},
			{Key: "b", Value: bytes.Repeat([]byte("b"), ioBufSize/2), ModRevision: 9},
			{Key: "c", Value: bytes.Repeat([]byte("c"), 3*ioBufSize+7), ModRevision: 9},
			{Key: strings.Repeat("k", maxSlabField+3), Value: []byte("long key"), ModRevision: 9},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			txn := s.Txn()
			for _, ent := range tt.entries {
				txn.Put(ent.Key, ent.Value, ent.ModRevision)
			}
			txn.Commit(tt.rev)
			roundTrip(t, s.View())
		})
	}
	// Sizes around the builder's batch and hold-back lengths.
	for _, n := range []int{1, 2, 3, fillLag - 1, fillLag, fillLag + 1, 2 * fillLag, batchLen + 1, 5000} {
		t.Run(fmt.Sprintf("%d keys", n), func(t *testing.T) {
			roundTrip(t, viewOf(t, n, 7))
		})
	}
}

// TestCodecReaders decodes through readers that return data in odd pieces.
func TestCodecReaders(t *testing.T) {
	v := viewOf(t, 3000, 4)
	s := New()
	txn := s.Txn()
	txn.Put("big", bytes.Repeat([]byte{7}, 5*ioBufSize), 1)
	txn.Put("small", []byte("x"), 1)
	txn.Commit(1)
	for _, src := range []*View{v, viewWith("a/1", "a/2"), s.View()} {
		data := encode(t, src)
		readers := map[string]io.Reader{
			"one byte": iotest.OneByteReader(bytes.NewReader(data)),
			"half":     iotest.HalfReader(bytes.NewReader(data)),
			"data+EOF": iotest.DataErrReader(bytes.NewReader(data)),
		}
		for name, r := range readers {
			t.Run(fmt.Sprintf("%s/%d keys", name, src.Len()), func(t *testing.T) {
				got, err := ReadView(r)
				if err != nil {
					t.Fatalf("ReadView: %v", err)
				}
				if diff := diffViews(got, src); diff != "" {
					t.Error(diff)
				}
			})
		}
	}
}

func TestDecodedValuesAreIsolated(t *testing.T) {
	got := roundTrip(t, viewWith("a", "b", "c"))
	a, _ := got.Get("a")
	if len(a.Value) != cap(a.Value) {
		t.Errorf("cap(Get(%q).Value) = %d, want %d", "a", cap(a.Value), len(a.Value))
	}
	_ = append(a.Value, "XXXX"...)
	if b, _ := got.Get("b"); string(b.Value) != "b" {
		t.Errorf("Get(%q) = %s after appending to another value, want value b", "b", fmtEntry(b, true))
	}
}

// TestCorruptByteFlips flips every byte of a small snapshot, in several
// ways: CRC-32C detects every error within 32 bits.
func TestCorruptByteFlips(t *testing.T) {
	data := encode(t, viewOf(t, 5, 6))
	for _, mask := range []byte{0x01, 0x80, 0xff} {
		for i := range data {
			bad := bytes.Clone(data)
			bad[i] ^= mask
			if _, err := ReadView(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("byte %d ^ %#02x: ReadView error = %v, want ErrCorrupt", i, mask, err)
			}
		}
	}
}

func TestCorruptTruncated(t *testing.T) {
	data := encode(t, viewOf(t, 5, 6))
	for n := range len(data) {
		if _, err := ReadView(bytes.NewReader(data[:n])); !errors.Is(err, ErrCorrupt) {
			t.Errorf("first %d of %d bytes: ReadView error = %v, want ErrCorrupt", n, len(data), err)
		}
	}
}

// snapshot assembles a snapshot from raw parts, with a valid checksum.
type snapshot struct {
	version      byte
	rev          uint64
	count, bytes uint64
	body         []byte // the entries
	corruptCRC   bool
}

func (s snapshot) encode() []byte {
	b := append([]byte(snapshotMagic), s.version)
	b = binary.AppendUvarint(b, s.rev)
	b = binary.AppendUvarint(b, s.count)
	b = binary.AppendUvarint(b, s.bytes)
	b = append(b, s.body...)
	sum := crc32.Checksum(b, castagnoli)
	if s.corruptCRC {
		sum++
	}
	return binary.LittleEndian.AppendUint32(b, sum)
}

// rawEntry encodes one entry with revisions 1, 1, 1.
func rawEntry(key, value string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(key)))
	b = append(b, key...)
	b = binary.AppendUvarint(b, uint64(len(value)))
	b = append(b, value...)
	return append(b, 1, 1, 1)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestCorruptCrafted(t *testing.T) {
	ab := cat(rawEntry("a", "1"), rawEntry("b", "2"))
	uv := func(x uint64) []byte { return binary.AppendUvarint(nil, x) }
	tests := []struct {
		name string
		data []byte
	}{
		{"empty input", nil},
		{"bad magic", append([]byte("SKIFFSNQ"), snapshot{version: 1}.encode()[8:]...)},
		{"unknown version", snapshot{version: 2}.encode()},
		{"version zero", snapshot{version: 0}.encode()},
		{"checksum", snapshot{version: 1, count: 2, bytes: 4, body: ab, corruptCRC: true}.encode()},
		{"trailing byte", append(snapshot{version: 1}.encode(), 0)},
		{"two snapshots", append(snapshot{version: 1}.encode(), snapshot{version: 1}.encode()...)},
		{"keys descending", snapshot{version: 1, count: 2, bytes: 4, body: cat(rawEntry("b", "2"), rawEntry("a", "1"))}.encode()},
		{"duplicate key", snapshot{version: 1, count: 2, bytes: 4, body: cat(rawEntry("a", "1"), rawEntry("a", "2"))}.encode()},
		{"second empty key", snapshot{version: 1, count: 2, bytes: 1, body: cat(rawEntry("", ""), rawEntry("", "x"))}.encode()},
		{"bytes too small", snapshot{version: 1, count: 2, bytes: 3, body: ab}.encode()},
		{"bytes too large", snapshot{version: 1, count: 2, bytes: 5, body: ab}.encode()},
		{"count too small", snapshot{version: 1, count: 1, bytes: 4, body: ab}.encode()},
		{"count too large", snapshot{version: 1, count: 3, bytes: 4, body: ab}.encode()},
		{"count over bytes", snapshot{version: 1, count: 1 << 40, bytes: 4, body: ab}.encode()},
		{"bytes over int64", snapshot{version: 1, count: 1, bytes: 1 << 63, body: ab}.encode()},
		{"key over limit", snapshot{version: 1, count: 1, bytes: 1 << 40, body: cat(uv(maxKeyLen+1), []byte("x"))}.encode()},
		{"value over limit", snapshot{version: 1, count: 1, bytes: 1 << 40, body: cat(uv(1), []byte("k"), uv(maxValueLen+1))}.encode()},
		{"value over bytes", snapshot{version: 1, count: 1, bytes: 3, body: rawEntry("k", "vvv")}.encode()},
		{"huge value truncated", snapshot{version: 1, count: 1, bytes: 1 << 40, body: cat(uv(1), []byte("k"), uv(maxValueLen), []byte("v"))}.encode()},
		{"varint not shortest", snapshot{version: 1, count: 1, bytes: 2, body: cat([]byte{0x81, 0x00}, rawEntry("k", "v")[1:])}.encode()},
		{"varint overflow", snapshot{version: 1, count: 1, bytes: 2, body: cat(bytes.Repeat([]byte{0xff}, 10), []byte{1})}.encode()},
		{"varint endless", cat([]byte(snapshotMagic), []byte{1}, bytes.Repeat([]byte{0x80}, 100))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := ReadView(bytes.NewReader(tt.data))
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadView = %v, %v; want error wrapping ErrCorrupt", v, err)
			}
		})
	}
}

// TestCorruptLengthAllocatesLittle checks that a huge declared length is not
// trusted: ReadView allocates in proportion to the data actually present.
func TestCorruptLengthAllocatesLittle(t *testing.T) {
	uv := func(x uint64) []byte { return binary.AppendUvarint(nil, x) }
	data := snapshot{version: 1, count: 1 << 30, bytes: 1 << 40,
		body: cat(uv(1), []byte("k"), uv(maxValueLen), make([]byte, 100<<10))}.encode()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := ReadView(bytes.NewReader(data))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadView error = %v, want ErrCorrupt", err)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("ReadView allocated %d bytes for a %d-byte input, want < 4 MiB", got, len(data))
	}
}

var errBoom = errors.New("boom")

func TestReaderErrors(t *testing.T) {
	data := encode(t, viewOf(t, 100, 2))
	tests := []struct {
		name string
		r    io.Reader
	}{
		{"immediately", iotest.ErrReader(errBoom)},
		{"midway", io.MultiReader(bytes.NewReader(data[:len(data)/2]), iotest.ErrReader(errBoom))},
		{"after the trailer", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errBoom))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadView(tt.r)
			if !errors.Is(err, errBoom) || errors.Is(err, ErrCorrupt) {
				t.Errorf("ReadView error = %v, want %v and not ErrCorrupt", err, errBoom)
			}
		})
	}
}

// failWriter accepts limit bytes, then fails, or writes short when short.
type failWriter struct {
	limit int
	short bool
	n     int
}

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n+len(p) <= w.limit {
		w.n += len(p)
		return len(p), nil
	}
	n := w.limit - w.n
	w.n = w.limit
	if w.short {
		return n, nil
	}
	return n, errBoom
}

func TestWriteToErrors(t *testing.T) {
	v := viewOf(t, 20000, 3) // larger than the encoder's buffer
	size := len(encode(t, v))
	for _, limit := range []int{0, 10, ioBufSize - 1, ioBufSize, size - 4, size - 1} {
		for _, short := range []bool{false, true} {
			t.Run(fmt.Sprintf("limit %d short %v", limit, short), func(t *testing.T) {
				w := &failWriter{limit: limit, short: short}
				n, err := v.WriteTo(w)
				want := errBoom
				if short {
					want = io.ErrShortWrite
				}
				if !errors.Is(err, want) {
					t.Errorf("WriteTo error = %v, want %v", err, want)
				}
				if n != int64(w.n) {
					t.Errorf("WriteTo returned %d, writer took %d bytes", n, w.n)
				}
			})
		}
	}
}

func TestWriteToRefusesOversizedKey(t *testing.T) {
	s := New()
	txn := s.Txn()
	txn.Put(strings.Repeat("k", maxKeyLen+1), nil, 1)
	txn.Commit(1)
	if _, err := s.View().WriteTo(io.Discard); err == nil || errors.Is(err, ErrCorrupt) {
		t.Errorf("WriteTo of a %d-byte key: error = %v, want a limit error", maxKeyLen+1, err)
	}
}

// TestDecodedTreeTakesWrites checks that a decoded tree, whose leaves the
// builder packs full, stays a valid B-tree under writes that split them.
func TestDecodedTreeTakesWrites(t *testing.T) {
	const n = 63 * 100
	v := roundTrip(t, viewOf(t, n, 1))
	s := New()
	s.Reset(v)
	txn := s.Txn()
	for i := range n {
		txn.Put(fmt.Sprintf("k/%04d-x", i), []byte("x"), 2)
		if i%2 == 0 {
			txn.Delete(fmt.Sprintf("k/%04d", i), 2)
		}
	}
	txn.Commit(2)
	got := s.View()
	if want := n + n - n/2; got.Len() != want {
		t.Fatalf("Len() = %d, want %d", got.Len(), want)
	}
	prev := ""
	got.Range("", "", func(ent Entry) bool {
		if ent.Key <= prev {
			t.Fatalf("Range: key %q after %q", ent.Key, prev)
		}
		prev = ent.Key
		return true
	})
	roundTrip(t, got)
}

func FuzzReadView(f *testing.F) {
	for _, v := range []*View{New().View(), viewOf(f, 3, 9), viewWith("", "a/b", "a/b-c", "a/b/c")} {
		data := encode(f, v)
		f.Add(data)
		f.Add(data[:len(data)-1])
		f.Add(data[:len(data)/2])
	}
	f.Add([]byte{})
	f.Add([]byte(snapshotMagic))
	f.Add(snapshot{version: 1, count: 2, bytes: 4, body: cat(rawEntry("b", "2"), rawEntry("a", "1"))}.encode())
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ReadView(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("ReadView error = %v, want ErrCorrupt", err)
			}
			return
		}
		// The encoding is canonical, so whatever decodes must re-encode
		// to the input.
		var buf bytes.Buffer
		if _, err := v.WriteTo(&buf); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatalf("decoded view re-encodes to %x, want %x", buf.Bytes(), data)
		}
		checkSorted(t, v)
	})
}

// checkSorted checks that a full scan is strictly ascending and agrees with
// Len, Bytes and Get.
func checkSorted(t *testing.T, v *View) {
	t.Helper()
	n, size, prev := 0, int64(0), ""
	v.Range("", "", func(ent Entry) bool {
		if n > 0 && ent.Key <= prev {
			t.Fatalf("Range: key %q after %q", ent.Key, prev)
		}
		if g, ok := v.Get(ent.Key); !ok || !sameEntry(g, ent) {
			t.Fatalf("Get(%q) = %s, want %s", ent.Key, fmtEntry(g, ok), fmtEntry(ent, true))
		}
		n, size, prev = n+1, size+int64(len(ent.Key)+len(ent.Value)), ent.Key
		return true
	})
	if n != v.Len() || size != v.Bytes() {
		t.Fatalf("scan found %d keys, %d bytes; Len() = %d, Bytes() = %d", n, size, v.Len(), v.Bytes())
	}
}
