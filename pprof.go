package skiff

import (
	"fmt"
	"html"
	"net/http"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"time"
)

// The profiling endpoints are served from runtime/pprof directly, not by
// importing net/http/pprof: that package registers its handlers on
// http.DefaultServeMux when imported, so every program embedding skiff
// would serve profiles wherever it serves the default mux, whether it
// asked for them or not. These handlers exist only on HTTPHandler's mux
// with HTTPOptions.Pprof, and answer what `go tool pprof` and
// `go tool trace` ask of net/http/pprof's.

// maxProfileSeconds bounds a CPU profile or trace, which runs for the
// time asked while the request waits.
const maxProfileSeconds = 60

func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/{$}", pprofIndex)
	mux.HandleFunc("GET /debug/pprof/profile", pprofCPU)
	mux.HandleFunc("GET /debug/pprof/trace", pprofTrace)
	mux.HandleFunc("GET /debug/pprof/{name}", pprofNamed)
}

func pprofIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprint(w, "<html><head><title>/debug/pprof/</title></head><body><p>Profiles:</p><ul>\n")
	for _, p := range pprof.Profiles() {
		name := html.EscapeString(p.Name())
		fmt.Fprintf(w, "<li><a href=\"%s?debug=1\">%s</a> (%d)</li>\n", name, name, p.Count())
	}
	fmt.Fprint(w, "<li><a href=\"profile?seconds=30\">profile</a>: CPU, 30 s</li>\n")
	fmt.Fprint(w, "<li><a href=\"trace?seconds=5\">trace</a>: execution trace, 5 s</li>\n</ul></body></html>\n")
}

// pprofNamed serves a runtime profile (heap, goroutine, allocs, block,
// mutex, threadcreate): binary for pprof, or text with debug=1 or 2.
func pprofNamed(w http.ResponseWriter, r *http.Request) {
	p := pprof.Lookup(r.PathValue("name"))
	if p == nil {
		http.Error(w, "unknown profile", http.StatusNotFound)
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if r.FormValue("gc") != "" && p.Name() == "heap" {
		runtime.GC()
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", p.Name()))
	}
	p.WriteTo(w, debug)
}

// pprofCPU serves a CPU profile of the next seconds (default 30).
func pprofCPU(w http.ResponseWriter, r *http.Request) {
	d, ok := profileDuration(w, r, 30)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="profile"`)
	if err := pprof.StartCPUProfile(w); err != nil {
		// Most likely another profile is running; only one can.
		http.Error(w, "cannot start a CPU profile: "+err.Error(), http.StatusConflict)
		return
	}
	sleep(r, d)
	pprof.StopCPUProfile()
}

// pprofTrace serves an execution trace of the next seconds (default 1).
func pprofTrace(w http.ResponseWriter, r *http.Request) {
	d, ok := profileDuration(w, r, 1)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="trace"`)
	if err := trace.Start(w); err != nil {
		http.Error(w, "cannot start a trace: "+err.Error(), http.StatusConflict)
		return
	}
	sleep(r, d)
	trace.Stop()
}

func profileDuration(w http.ResponseWriter, r *http.Request, def float64) (time.Duration, bool) {
	s := def
	if v := r.FormValue("seconds"); v != "" {
		var err error
		if s, err = strconv.ParseFloat(v, 64); err != nil || s <= 0 || s > maxProfileSeconds {
			http.Error(w, fmt.Sprintf("seconds must be a number in (0, %d]", maxProfileSeconds), http.StatusBadRequest)
			return 0, false
		}
	}
	return time.Duration(s * float64(time.Second)), true
}

// sleep waits for d, or until the client goes away.
func sleep(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}
