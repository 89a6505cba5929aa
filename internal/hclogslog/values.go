package hclogslog

import (
	"encoding"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"
)

// value converts one of hclog's argument values for slog. hclog's own
// formatter gives its formatting types their meaning; slog would write
// them as what they are (hclog.Fmt is a []any holding a format string),
// so they are formatted here.
func value(v any) slog.Value {
	switch x := v.(type) {
	case hclog.Format:
		return slog.StringValue(formatted(x))
	case hclog.Hex:
		return slog.StringValue("0x" + strconv.FormatInt(int64(x), 16))
	case hclog.Octal:
		return slog.StringValue("0" + strconv.FormatInt(int64(x), 8))
	case hclog.Binary:
		return slog.StringValue("0b" + strconv.FormatInt(int64(x), 2))
	case hclog.Quote:
		return slog.StringValue(strconv.Quote(string(x)))
	case time.Duration:
		// slog's JSON handler writes nanoseconds; "1.5s" is what an
		// operator reads.
		return slog.StringValue(x.String())
	}
	sv := slog.AnyValue(v)
	if sv.Kind() != slog.KindAny {
		return sv
	}
	if s, ok := v.(fmt.Stringer); ok && !marshals(v) {
		return slog.StringValue(stringOf(s))
	}
	return sv
}

// marshals reports whether a handler already writes v well: errors (as
// their message), values that say how to log or encode themselves.
func marshals(v any) bool {
	switch v.(type) {
	case error, slog.LogValuer, json.Marshaler, encoding.TextMarshaler:
		return true
	}
	return false
}

func formatted(f hclog.Format) string {
	if len(f) == 0 {
		return ""
	}
	format, ok := f[0].(string)
	if !ok {
		return fmt.Sprint(f...)
	}
	return fmt.Sprintf(format, f[1:]...)
}

// stringOf calls String, which a nil pointer may not survive: a log line
// must not take the process down.
func stringOf(s fmt.Stringer) (out string) {
	defer func() {
		if recover() != nil {
			out = fmt.Sprintf("%T(<String panicked>)", s)
		}
	}()
	return s.String()
}
