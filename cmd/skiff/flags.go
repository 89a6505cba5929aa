package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Flags come from three places, strongest first: the command line, the
// environment (SKIFF_ and the flag's name in capitals, dashes as
// underscores: --bind-addr is SKIFF_BIND_ADDR), and for serve a config
// file. Only serve's flags and the common client flags read the
// environment; a verb's own flags (--limit, --from, ...) do not, so that a
// variable left set for one script cannot change what another asks for.

// envName is the environment variable of a flag.
func envName(flagName string) string {
	return "SKIFF_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// commonFlags are the flags of every client verb. They may come before
// the verb (skiff --endpoints A put k v) or after it.
type commonFlags struct {
	endpoints string
	cacert    string
	cert      string
	key       string
	token     string
	timeout   time.Duration
	json      bool
}

var commonNames = []string{"endpoints", "cacert", "cert", "key", "token", "timeout", "json"}

// addCommon registers the common flags on fs, with c's current values as
// defaults, so that values given before the verb carry over. Flags named
// in except are left out: watch has a --key of its own, and its TLS key
// comes before the verb or from SKIFF_KEY.
func addCommon(fs *flag.FlagSet, c *commonFlags, except ...string) {
	add := func(name string, define func(name string)) {
		if !slices.Contains(except, name) {
			define(name)
		}
	}
	add("endpoints", func(n string) {
		fs.StringVar(&c.endpoints, n, c.endpoints, "comma-separated `host:port` addresses of cluster members (env SKIFF_ENDPOINTS)")
	})
	add("cacert", func(n string) {
		fs.StringVar(&c.cacert, n, c.cacert, "PEM `file` of the CA that signed the nodes' certificates: talk TLS (env SKIFF_CACERT)")
	})
	add("cert", func(n string) {
		fs.StringVar(&c.cert, n, c.cert, "PEM `file` of a client certificate, for mutual TLS (env SKIFF_CERT)")
	})
	add("key", func(n string) {
		fs.StringVar(&c.key, n, c.key, "PEM `file` of the client certificate's key (env SKIFF_KEY)")
	})
	add("token", func(n string) {
		fs.StringVar(&c.token, n, c.token, "bearer `token` the cluster maps to a role (env SKIFF_TOKEN)")
	})
	add("timeout", func(n string) {
		fs.DurationVar(&c.timeout, n, c.timeout, "how long the command may take; 0: 10s, backup and restore 1h, watch no limit (env SKIFF_TIMEOUT)")
	})
	add("json", func(n string) {
		fs.BoolVar(&c.json, n, c.json, "print one JSON object per result, for scripts (env SKIFF_JSON)")
	})
}

// commonFromEnv fills c from the environment.
func commonFromEnv(c *commonFlags) error {
	fs := flag.NewFlagSet("env", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addCommon(fs, c)
	return setFromEnv(fs, commonNames, nil)
}

// setFromEnv sets each flag in names that set does not mark from its
// environment variable, if that is set.
func setFromEnv(fs *flag.FlagSet, names []string, set map[string]bool) error {
	for _, name := range names {
		if set[name] {
			continue
		}
		v, ok := os.LookupEnv(envName(name))
		if !ok {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return usagef("%s: %v", envName(name), err)
		}
	}
	return nil
}

// parseFlags parses args with fs, allowing flags after the arguments too
// (skiff ls users --limit 5), and returns the arguments. "--" ends the
// flags: what follows is arguments even if it starts with a dash (a key
// like "-x").
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard) // errors are reported by Run, help by usage
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%s: %v", fs.Name(), err)
		}
		rest := fs.Args()
		consumed := args[:len(args)-len(rest)]
		if len(consumed) > 0 && consumed[len(consumed)-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// wantArgs checks the number of arguments a verb got.
func wantArgs(verb string, args []string, lo, hi int, names string) error {
	if len(args) < lo || len(args) > hi {
		return usagef("%s takes %s, got %d argument(s)", verb, names, len(args))
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty items and
// spaces around them.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// listFlag is a comma-separated list flag; each Set replaces the list,
// so that a command-line value overrides one from the environment.
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(s string) error {
	*l.p = splitList(s)
	return nil
}

// sizeFlag is a size in bytes with an optional unit: 512, 64KiB, 4MiB,
// 2GiB (KB, MB, GB are powers of ten).
type sizeFlag[T int | int64] struct{ p *T }

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
}

func (f sizeFlag[T]) String() string {
	if f.p == nil {
		return "0"
	}
	return formatSize(int64(*f.p))
}

func (f sizeFlag[T]) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	if int64(T(n)) != n {
		return fmt.Errorf("size %s out of range", s)
	}
	*f.p = T(n)
	return nil
}

func parseSize(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("invalid size %q (want a number of bytes, optionally with KiB, MiB, GiB)", s)
	}
	return n * mult, nil
}

// formatSize writes n with the largest binary unit that divides it.
func formatSize(n int64) string {
	for _, u := range slices.Backward(sizeUnits[:4]) {
		if n != 0 && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// humanBytes is n for people: 1.5 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
