package leasecache

import (
	"fmt"
	"strconv"
	"time"
)

// TimeWidth is the width of a time as the caches store it: Unix nanoseconds,
// zero-padded, so that a Lua script compares two times as strings (Lua's
// numbers are doubles and cannot hold nanoseconds exactly).
const TimeWidth = 20

// ZeroTime is the zero time as the caches store it.
const ZeroTime = "00000000000000000000"

// FormatTime encodes t for a cache: ZeroTime for the zero time (and for any
// time before 1970, which no lease or restart carries).
func FormatTime(t time.Time) string {
	if t.IsZero() || t.Before(time.Unix(0, 0)) {
		return ZeroTime
	}
	return fmt.Sprintf("%0*d", TimeWidth, t.UnixNano())
}

// ParseTime decodes a time FormatTime encoded.
func ParseTime(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || len(s) != TimeWidth {
		return time.Time{}, fmt.Errorf("bad cached time %q", s)
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, n).UTC(), nil
}
