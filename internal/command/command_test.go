package command

import (
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	cases := [][]Op{
		{{Kind: Put, Key: "users/alice", Value: []byte("admin")}},
		{{Kind: Put, Key: "k", Value: []byte{}, Cond: Absent}},
		{{Kind: Delete, Key: "a/b", Cond: ModRevision, Rev: math.MaxUint64}},
		{{Kind: Put, Key: "x", Value: []byte{0, 1, 2}, Cond: ModRevision, Rev: 7}, {Kind: Delete, Key: "y"}, {Kind: Put, Key: "x", Value: []byte("again")}},
	}
	for _, ops := range cases {
		b := Encode(ops)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(Encode(%v)): %v", ops, err)
		}
		if !reflect.DeepEqual(got, ops) {
			t.Fatalf("Decode(Encode(%v)) = %v", ops, got)
		}
		if err := Verify(b); err != nil {
			t.Fatalf("Verify(Encode(%v)): %v", ops, err)
		}
	}
}

// Every single-bit flip of an encoded entry is caught.
func TestEveryBitFlipIsCaught(t *testing.T) {
	b := Encode([]Op{{Kind: Put, Key: "users/alice", Value: []byte("admin"), Cond: ModRevision, Rev: 12}})
	for i := range b {
		for bit := 0; bit < 8; bit++ {
			d := append([]byte(nil), b...)
			d[i] ^= 1 << bit
			if _, err := Decode(d); err == nil {
				t.Fatalf("flipping bit %d of byte %d went unnoticed", bit, i)
			}
			if i > 0 && Verify(d) == nil {
				t.Fatalf("Verify missed bit %d of byte %d", bit, i)
			}
		}
	}
}

func TestRefusesWhatItCannotRead(t *testing.T) {
	good := Encode([]Op{{Kind: Put, Key: "k", Value: []byte("v")}})
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrCorrupt},
		{"later format", []byte{3, 0, 0, 0, 0}, ErrUnsupported},
		{"zero format", []byte{0}, ErrUnsupported},
		{"truncated", good[:len(good)-1], ErrCorrupt},
		{"trailing byte", append(append([]byte(nil), good...), 0), ErrCorrupt},
		{"no operations", withBody(0), ErrCorrupt},
		{"unknown kind", withBody(1, 9, 0, 1, 'k'), ErrUnsupported},
		{"unknown condition", withBody(1, 1, 7, 1, 'k', 0), ErrUnsupported},
		{"empty key", withBody(1, 2, 0, 0), ErrCorrupt},
		{"invalid UTF-8 key", withBody(1, 2, 0, 1, 0xff), ErrCorrupt},
		{"key longer than the entry", withBody(1, 2, 0, 9, 'k'), ErrCorrupt},
		{"too many operations", withBody(0x80, 0x80, 0x80, 0x80, 0x01), ErrCorrupt},
	}
	for _, tc := range cases {
		if _, err := Decode(tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: Decode(%x) = %v, want %v", tc.name, tc.data, err, tc.want)
		}
	}
}

// withBody returns a format 2 entry with the given body and a valid
// checksum.
func withBody(body ...byte) []byte {
	b := append([]byte{V2, 0, 0, 0, 0}, body...)
	sum := crc32.Checksum(b[headerLen:], castagnoli)
	b[1], b[2], b[3], b[4] = byte(sum), byte(sum>>8), byte(sum>>16), byte(sum>>24)
	return b
}

// Entries skiff wrote in format 1 (a format byte and a protobuf
// skiffpb.Command, as encodeCommand produced them) decode to the same
// operations.
func TestDecodesFormat1(t *testing.T) {
	cases := []struct {
		hex  string
		want Op
	}{
		{"010a140a0b75736572732f616c696365120561646d696e", Op{Kind: Put, Key: "users/alice", Value: []byte("admin")}},
		{"010a070a016b1a020801", Op{Kind: Put, Key: "k", Value: []byte{}, Cond: Absent}},
		{"010a0e0a016b120200011a05080210ac02", Op{Kind: Put, Key: "k", Value: []byte{0, 1}, Cond: ModRevision, Rev: 300}},
		{"0112050a03612f62", Op{Kind: Delete, Key: "a/b"}},
		{"01121e0a0d736b6966662f726573746f7265120d080210ffffffffffffffffff01", Op{Kind: Delete, Key: "skiff/restore", Cond: ModRevision, Rev: math.MaxUint64}},
	}
	for _, tc := range cases {
		b, _ := hex.DecodeString(tc.hex)
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("Decode(%s): %v", tc.hex, err)
		}
		if !reflect.DeepEqual(got, []Op{tc.want}) {
			t.Fatalf("Decode(%s) = %+v, want %+v", tc.hex, got, tc.want)
		}
	}
	for _, bad := range []string{"01", "010a", "01ff", "010a020801"} {
		b, _ := hex.DecodeString(bad)
		if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
			t.Errorf("Decode(%s) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Encode([]Op{{Kind: Put, Key: "a/b", Value: []byte("v")}}))
	f.Add(Encode([]Op{{Kind: Delete, Key: "a", Cond: ModRevision, Rev: 5}, {Kind: Put, Key: "b", Cond: Absent}}))
	v1, _ := hex.DecodeString("010a0e0a016b120200011a05080210ac02")
	f.Add(v1)
	f.Add([]byte{V2})
	f.Fuzz(func(t *testing.T, data []byte) {
		ops, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("Decode(%x) = %v, neither ErrCorrupt nor ErrUnsupported", data, err)
			}
			return
		}
		again, err := Decode(Encode(ops))
		if err != nil || !reflect.DeepEqual(again, ops) {
			t.Fatalf("re-encoding %+v gave %+v, %v", ops, again, err)
		}
	})
}
