package main

import (
	"context"
	"reflect"
	"testing"

	"github.com/ctr-seed/ctr-seed/importer"
	"github.com/urfave/cli/v3"
)

// Every flag of importFlags with a setter changes the options
// importOptions reads: a flag added without reaching importer.Options
// fails here.
func TestImportFlagsSetOptions(t *testing.T) {
	read := func(args ...string) importer.Options {
		t.Helper()
		var got importer.Options
		cmd := &cli.Command{Name: "import", Flags: append(commonImportFlags(), verifyFlags()...),
			Action: func(_ context.Context, cmd *cli.Command) (err error) {
				got, err = importOptions(cmd)
				return err
			}}
		if err := cmd.Run(context.Background(), append([]string{"import"}, args...)); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return got
	}
	def := read()
	value := map[string]string{"snapshotter": "native", "platform": "linux/arm64", "label": "a=b"}
	for _, f := range importFlags() {
		if f.set == nil {
			continue
		}
		name := f.flag.Names()[0]
		args := []string{"--" + name}
		if v, ok := value[name]; ok {
			args = append(args, v)
		} else if _, isBool := f.flag.(*cli.BoolFlag); !isBool {
			t.Errorf("--%s: give the test a value for it", name)
			continue
		}
		if got := read(args...); reflect.DeepEqual(got, def) {
			t.Errorf("%v: options unchanged: %+v", args, got)
		}
	}
}
