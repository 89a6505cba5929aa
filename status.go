package skiff

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	skiffpb "github.com/skiffkv/skiff/proto"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors cross the wire as a gRPC status whose code suits generic gRPC
// clients and whose ErrorInfo (domain "skiff", reason below) names the
// sentinel exactly, so the receiver gets an error that errors.Is matches
// against the same sentinel. This table is the only place that knows the
// mapping.
const errorDomain = "skiff"

// wireError is one row of the table.
type wireError struct {
	err    error
	code   codes.Code
	reason string
}

var wireErrors = []wireError{
	{ErrNotFound, codes.NotFound, "NOT_FOUND"},
	{ErrExists, codes.AlreadyExists, "EXISTS"},
	{ErrRevisionMismatch, codes.FailedPrecondition, "REVISION_MISMATCH"},
	{ErrInvalidKey, codes.InvalidArgument, "INVALID_KEY"},
	{ErrKeyTooLarge, codes.InvalidArgument, "KEY_TOO_LARGE"},
	{ErrValueTooLarge, codes.InvalidArgument, "VALUE_TOO_LARGE"},
	{ErrQuotaExceeded, codes.ResourceExhausted, "QUOTA_EXCEEDED"},
	{errNotRun, codes.ResourceExhausted, "NOT_RUN"}, // a batch's Get, to send again
	{ErrTooManyWatches, codes.ResourceExhausted, "TOO_MANY_WATCHES"},
	{ErrInvalidArgument, codes.InvalidArgument, "INVALID_ARGUMENT"},
	// ErrIndeterminate comes before ErrTimeout, ErrClosed and ErrNotLeader,
	// which it is often combined with: the caller must see it.
	{ErrIndeterminate, codes.Unknown, "INDETERMINATE"},
	{ErrNoLeader, codes.Unavailable, "NO_LEADER"},
	{ErrNotLeader, codes.Unavailable, "NOT_LEADER"},
	{ErrTimeout, codes.DeadlineExceeded, "TIMEOUT"},
	{ErrClosed, codes.Unavailable, "CLOSED"},
	{ErrNotMember, codes.NotFound, "NOT_MEMBER"},
	{ErrMemberConflict, codes.AlreadyExists, "MEMBER_CONFLICT"},
	{ErrCompacted, codes.OutOfRange, "COMPACTED"},
	{ErrWatchLagged, codes.Aborted, "WATCH_LAGGED"},
	{ErrDecode, codes.DataLoss, "DECODE"},
	{ErrCorrupt, codes.DataLoss, "CORRUPT"},
	{ErrStorage, codes.Unavailable, "STORAGE"},
	{ErrConfig, codes.FailedPrecondition, "CONFIG"},
	{ErrUnavailable, codes.Unavailable, "UNAVAILABLE"},
	{ErrPermissionDenied, codes.PermissionDenied, "PERMISSION_DENIED"},
}

// metaLeader carries the leader's address on a NOT_LEADER or NO_LEADER
// error, so a client can go straight to it.
const metaLeader = "leader"

// toStatus converts an error from a node into a gRPC status error. Every
// sentinel the error wraps travels as one reason; the first in wireErrors
// order decides the code. leader, when known, is passed along as a hint.
func toStatus(err error, leader string) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isSkiffError(err) {
		return err
	}
	code := codes.Unknown
	found := false
	var details []*errdetails.ErrorInfo
	for _, w := range sentinelsOf(err) {
		if !found {
			code, found = w.code, true
		}
		info := &errdetails.ErrorInfo{Domain: errorDomain, Reason: w.reason}
		if leader != "" && (w.err == ErrNotLeader || w.err == ErrNoLeader) {
			info.Metadata = map[string]string{metaLeader: leader}
		}
		var ce *CompactedError
		if w.err == ErrCompacted && errors.As(err, &ce) {
			info.Metadata = map[string]string{
				"revision": strconv.FormatUint(ce.Revision, 10),
				"oldest":   strconv.FormatUint(ce.Oldest, 10),
				"reset":    strconv.FormatBool(ce.Reset),
				"lagged":   strconv.FormatBool(ce.Lagged),
			}
		}
		details = append(details, info)
	}
	switch {
	case found:
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	}
	st := status.New(code, err.Error())
	for _, d := range details {
		if withDetail, derr := st.WithDetails(d); derr == nil {
			st = withDetail
		}
	}
	return st.Err()
}

func isSkiffError(err error) bool {
	return slices.ContainsFunc(wireErrors, func(w wireError) bool { return errors.Is(err, w.err) })
}

// sentinelsOf returns the rows of every sentinel err wraps, in table order.
func sentinelsOf(err error) []wireError {
	var out []wireError
	for _, w := range wireErrors {
		if errors.Is(err, w.err) {
			out = append(out, w)
		}
	}
	return out
}

// sentinelFor returns the sentinel a reason names.
func sentinelFor(reason string) (error, bool) {
	for _, w := range wireErrors {
		if w.reason == reason {
			return w.err, true
		}
	}
	return nil, false
}

// remoteError is an error received from another node. It matches, with
// errors.Is, every sentinel the sending node's error wrapped.
type remoteError struct {
	msg    string
	errs   []error
	leader string // leader hint, if the sender knew one
}

func (e *remoteError) Error() string   { return e.msg }
func (e *remoteError) Unwrap() []error { return e.errs }

// fromStatus converts an error returned by a gRPC call into skiff's
// errors. It returns the error unchanged when it is not a gRPC status
// (for example a context error) and a remoteError otherwise. Transport
// failures without skiff details become ErrUnavailable or ErrTimeout.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	re := &remoteError{msg: st.Message()}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.Domain != errorDomain {
			continue
		}
		if sentinel, ok := sentinelFor(info.Reason); ok {
			re.errs = append(re.errs, sentinel)
		}
		if info.Reason == "COMPACTED" && info.Metadata["oldest"] != "" {
			ce := &CompactedError{Reset: info.Metadata["reset"] == "true", Lagged: info.Metadata["lagged"] == "true"}
			ce.Revision, _ = strconv.ParseUint(info.Metadata["revision"], 10, 64)
			ce.Oldest, _ = strconv.ParseUint(info.Metadata["oldest"], 10, 64)
			re.errs = append(re.errs, ce)
		}
		if l := info.Metadata[metaLeader]; l != "" {
			re.leader = l
		}
	}
	if len(re.errs) > 0 {
		return re
	}
	switch st.Code() {
	case codes.DeadlineExceeded:
		re.errs = []error{ErrTimeout, context.DeadlineExceeded}
	case codes.Canceled:
		re.errs = []error{context.Canceled}
	case codes.Unavailable:
		re.errs = []error{ErrUnavailable}
	case codes.InvalidArgument:
		re.errs = []error{ErrInvalidArgument}
	case codes.PermissionDenied, codes.Unauthenticated:
		re.errs = []error{ErrPermissionDenied}
	case codes.ResourceExhausted:
		// The peer refused the message itself, usually for its size.
		re.errs = []error{ErrInvalidArgument}
	default:
		re.msg = fmt.Sprintf("rpc error: code = %s desc = %s", st.Code(), st.Message())
	}
	return re
}

// leaderHint returns the leader address carried by an error from
// fromStatus, if any.
func leaderHint(err error) string {
	var re *remoteError
	if errors.As(err, &re) {
		return re.leader
	}
	return ""
}

// toOpError converts a node error into one batch operation's result.
func toOpError(err error, leader string) *skiffpb.OpError {
	oe := &skiffpb.OpError{Message: err.Error()}
	for _, w := range sentinelsOf(err) {
		oe.Reasons = append(oe.Reasons, w.reason)
		if w.err == ErrNotLeader || w.err == ErrNoLeader {
			oe.Leader = leader
		}
	}
	switch {
	case len(oe.Reasons) > 0:
	case errors.Is(err, context.DeadlineExceeded):
		oe.Reasons = []string{"TIMEOUT"}
	case errors.Is(err, context.Canceled):
		oe.Reasons = []string{"UNAVAILABLE"}
	}
	return oe
}

// fromOpError converts one batch operation's failure back into an error
// matching the sender's sentinels.
func fromOpError(oe *skiffpb.OpError) error {
	re := &remoteError{msg: oe.Message, leader: oe.Leader}
	for _, r := range oe.Reasons {
		if sentinel, ok := sentinelFor(r); ok {
			re.errs = append(re.errs, sentinel)
		}
	}
	return re
}
