package cli

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version, when set at link time, overrides the module version recorded in the
// binary:
//
//	go build -ldflags "-X github.com/lfsm/lfsm/internal/cli.version=v0.1.0" ./cmd/lfsm
var version string

// VersionOptions are the inputs of lfsm version.
type VersionOptions struct {
	IO        *IOStreams
	BuildInfo func() (*debug.BuildInfo, bool)
	Output    string
}

// VersionInfo is the result of lfsm version; its JSON form is versioned by
// FormatVersion.
type VersionInfo struct {
	FormatVersion string `json:"format_version"`
	Version       string `json:"version"`
	// Commit and CommitTime come from the VCS stamp; empty when not stamped.
	Commit     string `json:"commit"`
	CommitTime string `json:"commit_time"`
	Modified   bool   `json:"modified"`
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"`
}

func newVersionCmd(f *Factory, runF func(*VersionOptions) error) *cobra.Command {
	opts := &VersionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of lfsm",
		Long: heredoc(`
			Print the version of lfsm, the commit it was built from when known, and
			the Go toolchain and platform.

			The version is the module version recorded by the Go toolchain
			("(devel)" for a build from a source tree) unless it was set at link time
			with -ldflags "-X github.com/lfsm/lfsm/internal/cli.version=VERSION".
		`),
		Example: example(`
			lfsm version
			lfsm version --output json
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			opts.IO = f.IOStreams
			opts.BuildInfo = f.BuildInfo
			if runF != nil {
				return runF(opts)
			}
			return runVersion(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runVersion(_ context.Context, opts *VersionOptions) error {
	info := buildVersion(opts.BuildInfo)
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, info)
	}
	return writeVersionText(opts.IO.Out, info)
}

func buildVersion(read func() (*debug.BuildInfo, bool)) VersionInfo {
	info := VersionInfo{
		FormatVersion: "1",
		Version:       "(unknown)",
		GoVersion:     runtime.Version(),
		Platform:      runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := read(); ok && bi != nil {
		if bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.CommitTime = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if version != "" {
		info.Version = version
	}
	return info
}

func writeVersionText(w io.Writer, info VersionInfo) error {
	line := "lfsm " + info.Version
	if info.Commit != "" {
		c := info.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if info.Modified {
			c += "+dirty"
		}
		line += " (" + c + ")"
	}
	_, err := fmt.Fprintf(w, "%s %s %s\n", line, info.GoVersion, info.Platform)
	return err
}
