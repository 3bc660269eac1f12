// Package netns runs code inside a named network namespace (one that
// `ip netns add` made, under /run/netns), for the lab, the namespace tests
// and the benchmarks.
package netns

// Dir is where `ip netns` keeps its named namespaces.
const Dir = "/run/netns"
