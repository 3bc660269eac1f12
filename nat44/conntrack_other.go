//go:build !linux

package nat44

func defaultConntrack() Conntrack { return nil }
