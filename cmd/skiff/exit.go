package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/skiffkv/skiff"
)

// Exit codes. Scripts branch on them, so each names a kind of outcome a
// script can act on differently: retry later (unavailable), read the key
// to find out (indeterminate), fix the command (usage), and so on.
const (
	exitOK            = 0
	exitError         = 1 // anything not below: a damaged backup, a failed disk, ...
	exitUsage         = 2 // bad flags or arguments, an invalid key, an invalid config
	exitNotFound      = 3 // no such key, no such member, a revision the watch history no longer holds
	exitPrecondition  = 4 // the key exists (--create), its revision differs (--rev), a member conflict
	exitUnavailable   = 5 // no node answered, no leader, the deadline passed
	exitIndeterminate = 6 // a write was sent and its outcome is unknown
	exitDenied        = 7 // the cluster refused the credentials or the role
)

// exitCodesHelp is the table printed by "skiff help" and kept in README.
const exitCodesHelp = `Exit codes:
  0  ok
  1  other errors (a damaged backup, a node that stopped, ...)
  2  usage: bad flags or arguments, an invalid key or config
  3  not found: no such key (get), no such member (remove), or
     changes the watch history no longer holds (watch --from)
  4  precondition failed: the key exists (put --create), its revision
     differs (put/del --rev), or a member conflicts
  5  unavailable: no node answered, no leader, or the deadline passed
  6  indeterminate: a write was sent but its outcome is unknown; read
     the key to find out
  7  permission denied: missing or invalid token or certificate, or a
     role that does not allow the call
`

// errUsage is wrapped by every error that means the command itself is
// wrong: a flag, an argument, a file named on the command line.
var errUsage = errors.New("usage")

// usageError is an error wrapping errUsage whose message is just what is
// wrong.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }
func (usageError) Unwrap() error   { return errUsage }

func usagef(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// exitCode maps an error to its exit code. The order matters where one
// error wraps several sentinels: a write cut short by a deadline wraps
// both ErrIndeterminate and ErrTimeout, and the caller must learn the
// former.
func exitCode(err error) int {
	is := func(targets ...error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
	switch {
	case err == nil:
		return exitOK
	case is(skiff.ErrIndeterminate):
		return exitIndeterminate
	case is(errUsage, skiff.ErrInvalidKey, skiff.ErrKeyTooLarge, skiff.ErrValueTooLarge, skiff.ErrInvalidArgument, skiff.ErrConfig):
		return exitUsage
	case is(skiff.ErrPermissionDenied):
		return exitDenied
	case is(skiff.ErrNotFound, skiff.ErrNotMember, skiff.ErrCompacted):
		return exitNotFound
	case is(skiff.ErrExists, skiff.ErrRevisionMismatch, skiff.ErrMemberConflict):
		return exitPrecondition
	case is(skiff.ErrUnavailable, skiff.ErrNoLeader, skiff.ErrNotLeader, skiff.ErrTimeout, context.DeadlineExceeded):
		return exitUnavailable
	}
	return exitError
}
