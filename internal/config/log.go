package config

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Log formats of --log-format. The zero value logs nothing unless verbose.
const (
	LogText = "text"
	LogJSON = "json"
)

// LogFormats lists the valid --log-format values, in the order help shows them.
func LogFormats() []string { return []string{LogText, LogJSON} }

// NewLogger returns the logger of lfsm run and lfsm dev (and of a project
// binary's run and worker), writing to w. Their λ lines and summaries already
// say what each step did and how the execution ended, so by default there are
// no logs: a failure is printed once. verbose (-v) turns on logs at info
// level, as text unless format says json; format alone turns them on at warn
// level. An unknown format is an error that lists the valid ones.
func NewLogger(w io.Writer, format string, verbose bool) (*slog.Logger, error) {
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "":
		if !verbose {
			return slog.New(slog.DiscardHandler), nil
		}
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case LogText:
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case LogJSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("invalid --log-format %q: want one of %s", format, strings.Join(LogFormats(), ", "))
}
