package lab

// WithFail returns opt with a hook that Up calls after each build step;
// an error from it makes Up fail there.
func WithFail(opt Options, fail func(step string) error) Options {
	opt.fail = fail
	return opt
}

// BuildSteps lists the steps of Up in order, as WithFail names them.
func BuildSteps() []string {
	steps := []string{"dirs"}
	for _, p := range (&Lab{Name: DefaultName}).plan(newTopology()) {
		steps = append(steps, p.name)
	}
	return append(steps, "state")
}

// Bare returns a Lab value for dir without building anything: enough for
// what only uses the state folder, such as Respawn.
func Bare(dir string) *Lab {
	return &Lab{Name: "bare", Dir: dir, exited: make(map[string]chan struct{})}
}

// ReadLease is readLease.
var ReadLease = readLease
