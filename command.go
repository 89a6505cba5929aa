package skiff

import (
	"fmt"

	"github.com/hashicorp/raft"
	"github.com/skiffkv/skiff/internal/command"
	skiffpb "github.com/skiffkv/skiff/proto"
)

// Writes reach the Raft log as internal/command entries: skiff's own
// versioned, checksummed format. A command is always built here, from
// fields that were validated, never copied from a message received over
// the network: whatever else a request carries (unknown fields, say)
// stays out of the log.

func putOp(key string, value []byte) command.Op {
	return command.Op{Kind: command.Put, Key: key, Value: value}
}

func deleteOp(key string) command.Op {
	return command.Op{Kind: command.Delete, Key: key}
}

// ifRevision adds the condition that the key is at revision rev.
func ifRevision(op command.Op, rev uint64) command.Op {
	op.Cond, op.Rev = command.ModRevision, rev
	return op
}

// ifAbsent adds the condition that the key does not exist.
func ifAbsent(op command.Op) command.Op {
	op.Cond = command.Absent
	return op
}

// validateOp rejects anything that must not reach the log.
func (n *Node) validateOp(op command.Op) error {
	if err := validateKey(op.Key, n.cfg.MaxKeySize); err != nil {
		return err
	}
	switch op.Kind {
	case command.Put:
		if len(op.Value) > n.cfg.MaxValueSize {
			return fmt.Errorf("%w: %d bytes for %q, limit %d", ErrValueTooLarge, len(op.Value), truncKey(op.Key), n.cfg.MaxValueSize)
		}
	case command.Delete:
		if op.Cond == command.Absent {
			return fmt.Errorf("%w: a delete on condition that the key is absent does nothing", ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("%w: unknown operation %d", ErrInvalidArgument, op.Kind)
	}
	switch op.Cond {
	case command.Always, command.Absent:
		if op.Rev != 0 {
			return fmt.Errorf("%w: revision %d given without a revision condition", ErrInvalidArgument, op.Rev)
		}
	case command.ModRevision:
		if op.Rev == 0 {
			return fmt.Errorf("%w: revision 0 in a compare (use Create for absent keys)", ErrInvalidArgument)
		}
	default:
		return fmt.Errorf("%w: unknown condition %d", ErrInvalidArgument, op.Cond)
	}
	return nil
}

func truncKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "…"
	}
	return k
}

// opFromPut builds the operation a PutRequest asks for.
func opFromPut(req *skiffpb.PutRequest) (command.Op, error) {
	return withCondition(putOp(req.GetKey(), req.GetValue()), req.GetCondition())
}

// opFromDelete builds the operation a DeleteRequest asks for.
func opFromDelete(req *skiffpb.DeleteRequest) (command.Op, error) {
	return withCondition(deleteOp(req.GetKey()), req.GetCondition())
}

func withCondition(op command.Op, c *skiffpb.Condition) (command.Op, error) {
	switch c.GetKind() {
	case skiffpb.Condition_NONE:
		op.Cond = command.Always
	case skiffpb.Condition_ABSENT:
		op.Cond = command.Absent
	case skiffpb.Condition_MOD_REVISION:
		op.Cond = command.ModRevision
	default:
		return op, fmt.Errorf("%w: unknown condition %d", ErrInvalidArgument, c.GetKind())
	}
	op.Rev = c.GetModRevision()
	return op, nil
}

// conditionToPB is the wire form of op's condition, for forwarding.
func conditionToPB(op command.Op) *skiffpb.Condition {
	switch op.Cond {
	case command.Absent:
		return &skiffpb.Condition{Kind: skiffpb.Condition_ABSENT}
	case command.ModRevision:
		return &skiffpb.Condition{Kind: skiffpb.Condition_MOD_REVISION, ModRevision: op.Rev}
	}
	return nil
}

// decodeEntry reads a command entry of the log. Failing to read one is
// fatal for this node (see fsm.fail): ErrCorrupt naming the index.
func decodeEntry(l *raft.Log) ([]command.Op, error) {
	ops, err := command.Decode(l.Data)
	if err != nil {
		return nil, fmt.Errorf("%w: log entry %d: %w", ErrCorrupt, l.Index, err)
	}
	return ops, nil
}
