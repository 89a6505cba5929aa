package command

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// Format 1 is the protobuf encoding of this message, frozen as it was
// when format 2 replaced it (the client API's messages have changed
// since, which is why this decoder does not use them):
//
//	message Command { oneof op { PutRequest put = 1; DeleteRequest delete = 2; } }
//	message PutRequest { string key = 1; bytes value = 2; Condition condition = 3; }
//	message DeleteRequest { string key = 1; Condition condition = 2; }
//	message Condition { Kind kind = 1; uint64 mod_revision = 2; }  // NONE, ABSENT, MOD_REVISION
//
// It follows protobuf's rules: unknown fields are skipped, the last of a
// repeated scalar wins, the last member of the oneof wins.

func decodeV1(b []byte) ([]Op, error) {
	var op Op
	have := false
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType || (num != 1 && num != 2) {
			return nil
		}
		op, have = Op{Kind: Put}, true
		if num == 2 {
			op.Kind = Delete
		}
		return decodeV1Request(v, &op)
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: format 1: %w", ErrCorrupt, err)
	case !have:
		return nil, fmt.Errorf("%w: format 1 entry without an operation", ErrCorrupt)
	case !utf8.ValidString(op.Key) || op.Key == "":
		return nil, fmt.Errorf("%w: invalid key %q", ErrCorrupt, op.Key)
	}
	if op.Kind == Put && op.Value == nil {
		op.Value = []byte{}
	}
	return []Op{op}, nil
}

// decodeV1Request reads a PutRequest or DeleteRequest into op.
func decodeV1Request(b []byte, op *Op) error {
	condField := protowire.Number(3)
	if op.Kind == Delete {
		condField = 2
	}
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			op.Key = string(v)
		case num == 2 && typ == protowire.BytesType && op.Kind == Put:
			op.Value = append([]byte{}, v...)
		case num == condField && typ == protowire.BytesType:
			return decodeV1Condition(v, op)
		}
		return nil
	})
}

func decodeV1Condition(b []byte, op *Op) error {
	return fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.VarintType {
			return nil
		}
		x, _ := protowire.ConsumeVarint(v)
		switch num {
		case 1:
			if x > uint64(ModRevision) {
				return fmt.Errorf("unknown condition %d", x)
			}
			op.Cond = Cond(x)
		case 2:
			op.Rev = x
		}
		return nil
	})
}

// fields calls f for each field of a protobuf message, with the field's
// raw value: the bytes of a length-delimited field, the varint's bytes
// otherwise.
func fields(b []byte, f func(protowire.Number, protowire.Type, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n >= 0 {
				v = b[:n]
			}
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := f(num, typ, v); err != nil {
			return err
		}
	}
	return nil
}
