package cli

import (
	"github.com/alecthomas/kong"
)

// exitPanic carries kong's exit code (after --help) out of its Exit hook
// without calling os.Exit.
type exitPanic int

// Parse parses args into grammar, a struct of kong tags, the way every
// lazaret program does: output to env's writers, usage on errors, compact
// help. When kong would exit the process (after --help), Parse returns
// exited true and the exit code instead, so that Run stays callable in
// tests and in-process (the operator's agent runs `lazaret scan` so).
func Parse(grammar any, name, description string, args []string, env Env) (kctx *kong.Context, code int, exited bool, err error) {
	parser, err := kong.New(grammar,
		kong.Name(name),
		kong.Description(description),
		kong.Writers(env.Stdout, env.Stderr),
		kong.Exit(func(c int) { panic(exitPanic(c)) }),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	if err != nil {
		return nil, 0, false, err
	}
	defer func() {
		if v := recover(); v != nil {
			c, ok := v.(exitPanic)
			if !ok {
				panic(v)
			}
			kctx, code, exited, err = nil, int(c), true, nil
		}
	}()
	kctx, err = parser.Parse(args)
	return kctx, 0, false, err
}
