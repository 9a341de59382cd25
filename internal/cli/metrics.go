package cli

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	awscw "github.com/aws/aws-sdk-go-v2/service/cloudwatch"
	"github.com/spf13/cobra"

	"github.com/lfsm/lfsm/internal/backend/awsconfig"
	"github.com/lfsm/lfsm/internal/backend/cloudwatch"
	"github.com/lfsm/lfsm/internal/config"
	"github.com/lfsm/lfsm/internal/engine"
)

// Where lfsm metrics --target aws reads (--source).
const (
	// sourcePublisher: what the function's PutMetricData publisher sent
	// (metrics.cloudwatch), in metrics.namespace.
	sourcePublisher = "publisher"
	// sourceEMF: the metrics CloudWatch Logs made of the EMF lines, which
	// every deployed function writes, in the namespace lfsm.
	sourceEMF = "emf"
	// sourceHistory: the local store's history and dropped messages.
	sourceHistory = "history"
)

// metricsOrder is the order of the counters' columns: the engine's, then
// the handler's, then any other name alphabetically.
var metricsOrder = []string{
	engine.MetricDispatch, engine.MetricDone, engine.MetricRetry, engine.MetricError, engine.MetricFatal,
	engine.MetricDropped, engine.MetricDuplicate, engine.MetricCache, engine.MetricRepair,
	"bounced", "handed_back", "failover",
}

// MetricsOptions are the inputs of lfsm metrics.
type MetricsOptions struct {
	Target  target
	IO      *IOStreams
	File    string
	DB      string
	Machine string
	Since   time.Duration
	Source  string
	Output  string
	// Metrics is the metrics: section (namespace, and whether the
	// publisher is on).
	Metrics config.Metrics
	// Now tells the time (time.Now when nil).
	Now func() time.Time
	// CloudWatch opens the CloudWatch client of a region (the SDK's, from
	// its standard chain, when nil); tests pass a fake's.
	CloudWatch func(ctx context.Context, region string) (cloudwatch.ReadAPI, error)
}

// MetricsResult is what lfsm metrics prints; its JSON form is versioned.
type MetricsResult struct {
	FormatVersion string `json:"format_version"`
	// Target is local or aws.
	Target string `json:"target"`
	// Source is history (the local store), publisher or emf (CloudWatch).
	Source string `json:"source"`
	// Store is the local store's file (target local).
	Store string `json:"store,omitempty"`
	// Namespace and Regions say where CloudWatch was read (target aws).
	Namespace string   `json:"namespace,omitempty"`
	Regions   []string `json:"regions"`
	Machine   string   `json:"machine,omitempty"`
	// Start and End bound the window [Start, End).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Counters are every non-zero counter of the window, sorted by machine,
	// state, event and name.
	Counters []MetricsCounter `json:"counters"`
	// Totals sum the counters per name.
	Totals map[string]int64 `json:"totals"`
	// Missing names counters the source keeps no trace of.
	Missing []string `json:"missing"`
	// CloudWatch is what reading CloudWatch cost (target aws).
	CloudWatch *cloudwatch.ReadUsage `json:"cloudwatch,omitempty"`
}

// MetricsCounter is one counter: a name and its dimensions (empty where the
// engine counts it without one), and its sum over the window.
type MetricsCounter struct {
	Name    string `json:"name"`
	Machine string `json:"machine"`
	State   string `json:"state"`
	Event   string `json:"event"`
	Value   int64  `json:"value"`
}

func newMetricsCmd(f *Factory, runF func(*MetricsOptions) error) *cobra.Command {
	opts := &MetricsOptions{}
	var since string
	cmd := &cobra.Command{
		Use:   "metrics [-m MACHINE] [--since DURATION] [--source publisher|emf] [--output text|json]",
		Short: "Show the engine's counters: transitions, retries, failures, drops",
		Long: heredoc(`
			Show the counters the engine keeps, per machine, state and event, summed
			over a window that ends now (--since, default 24h; 30d, 90m): dispatch
			(a step's attempt ran), done (an execution ended), retry and error (an
			attempt failed and was retried), fatal (it failed the execution),
			dropped (a message could not run), and where the source has them
			duplicate, cache (a store or queue call failed), repair, bounced,
			handed_back and failover. A row's state and event are those of the
			message the step ran (the state it leaves); counters counted without
			them, such as dropped, show "-".

			Locally (--target local, the default) they are counted from the store:
			one grouped query over its history (each committed attempt) and its
			dropped messages, so they survive the worker that counted them. What
			the store keeps no trace of (duplicate, cache, repair, bounced,
			handed_back) is listed as missing.

			With --target aws they are the deployed function's, read from
			CloudWatch: ListMetrics finds the namespace's metrics and
			GetMetricData sums each over the window, a call of each per 500
			metrics (CloudWatch bills GetMetricData $0.01 per thousand metrics
			requested; ListMetrics sees only metrics with data in the last two
			weeks). --source publisher
			reads what the function's PutMetricData sent (metrics.cloudwatch in
			lfsm.yaml; namespace metrics.namespace, dimensions Machine, State,
			Event), --source emf the metrics CloudWatch Logs made of its EMF log
			lines (namespace lfsm, dimensions machine, state, event), which every
			deployed function writes; the default is publisher when
			metrics.cloudwatch is on, else emf. The region is the function's (or
			the store table's) from the aws: settings; with
			metrics.secondary-region, where the publisher fails over to, the
			publisher's counters are the sum of both regions.

			-m keeps one machine's counters. With --output json: one document
			{"format_version":"1","target","source","start","end","counters":
			[{"name","machine","state","event","value"}],"totals":{...},
			"missing":[...]} and, on AWS, "namespace", "regions" and what the
			read cost ("cloudwatch").
		`),
		Example: example(`
			lfsm metrics
			lfsm metrics -m Example --since 7d --output json
			lfsm metrics --target aws --since 1h
			lfsm metrics --target aws --source emf --output json | jq .totals
		`),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkEnum(f, "output", opts.Output, textOrJSON); err != nil {
				return err
			}
			d, err := config.ParseAge(since)
			if err != nil {
				return usageErrorf("invalid --since%s: %w", f.sourceNote("since"), err)
			}
			opts.Since = d
			opts.Target, opts.IO, opts.Metrics = f.target(), f.IOStreams, f.Config.Metrics
			if opts.Source == "" {
				opts.Source = sourceEMF
				if opts.Metrics.CloudWatch {
					opts.Source = sourcePublisher
				}
			}
			if err := checkEnum(f, "source", opts.Source, []string{sourcePublisher, sourceEMF}); err != nil {
				return err
			}
			if !opts.Target.isAWS() && cmd.Flags().Changed("source") {
				return usageErrorf("--source chooses what to read in CloudWatch: it applies to --target aws only (locally the counters come from the store)")
			}
			if runF != nil {
				return runF(opts)
			}
			return runMetrics(cmd.Context(), opts)
		},
	}
	fl := cmd.Flags()
	storeFlags(fl, &opts.File, &opts.DB)
	fl.StringVarP(&opts.Machine, "machine", "m", "", "only the counters of `MACHINE` (default: every machine)")
	ignoreFileSetting(fl, "machine")
	fl.StringVar(&since, "since", "24h", "sum over the last `DURATION` (24h, 30d, 90m)")
	fl.StringVar(&opts.Source, "source", "", "with --target aws, read the `SOURCE`: publisher (PutMetricData) or emf (the log lines); default publisher when metrics.cloudwatch is on")
	fl.StringVar(&opts.Output, "output", outputText, "output `FORMAT`: text|json")
	return cmd
}

func runMetrics(ctx context.Context, opts *MetricsOptions) error {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	end := now().UTC().Truncate(time.Second)
	res := MetricsResult{FormatVersion: "1", Target: string(config.TargetLocal), Machine: opts.Machine,
		Start: end.Add(-opts.Since), End: end, Regions: []string{}, Missing: []string{}}
	var counts map[engine.MetricKey]int64
	var err error
	if opts.Target.isAWS() {
		counts, err = metricsAWS(ctx, opts, &res)
	} else {
		counts, err = metricsLocal(ctx, opts, &res)
	}
	if err != nil {
		return err
	}
	res.Counters, res.Totals = []MetricsCounter{}, map[string]int64{}
	for k, n := range counts {
		if n == 0 || (opts.Machine != "" && k.Machine != opts.Machine) {
			continue
		}
		res.Counters = append(res.Counters, MetricsCounter{Name: k.Name, Machine: k.Machine, State: k.State, Event: k.Event, Value: n})
		res.Totals[k.Name] += n
	}
	slices.SortFunc(res.Counters, func(a, b MetricsCounter) int {
		return cmp.Or(cmp.Compare(a.Machine, b.Machine), cmp.Compare(a.State, b.State), cmp.Compare(a.Event, b.Event),
			compareMetricNames(a.Name, b.Name))
	})
	if opts.Output == outputJSON {
		return writeJSON(opts.IO.Out, res)
	}
	return writeMetricsText(opts.IO, res)
}

// metricsLocal counts the local store's history and drops.
func metricsLocal(ctx context.Context, opts *MetricsOptions, res *MetricsResult) (map[engine.MetricKey]int64, error) {
	path := dbPath(opts.DB, opts.File)
	res.Source, res.Store = sourceHistory, path
	res.Missing = []string{engine.MetricDuplicate, engine.MetricCache, engine.MetricRepair, "bounced", "handed_back"}
	if storeMissing(opts.IO, path) {
		return nil, nil
	}
	db, err := openStore(ctx, path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var hc engine.HistoryCounter = db
	hs, ds, err := hc.CountHistory(ctx, res.Start)
	if err != nil {
		return nil, fmt.Errorf("count the store's history: %w", err)
	}
	return engine.CountersFrom(hs, ds), nil
}

// metricsAWS reads the deployed function's metrics from CloudWatch.
func metricsAWS(ctx context.Context, opts *MetricsOptions, res *MetricsResult) (map[engine.MetricKey]int64, error) {
	res.Target, res.Source = string(config.TargetAWS), opts.Source
	r, err := resolveAWS(ctx, opts.Target.aws)
	if err != nil {
		return nil, err
	}
	region := r.StoreTable.Region
	if r.Function != nil {
		region = r.Function.Region
	}
	ro := cloudwatch.ReadOptions{Namespace: cmp.Or(opts.Metrics.Namespace, cloudwatch.DefaultNamespace), Machine: opts.Machine,
		Start: res.Start, End: res.End}
	if opts.Source == sourceEMF {
		ro.Namespace, ro.Dimensions = cloudwatch.EMFNamespace, cloudwatch.EMFDimensions
		res.Missing = []string{}
	} else {
		ro.Dimensions = cloudwatch.PublisherDimensions
	}
	res.Namespace = ro.Namespace
	open := opts.CloudWatch
	if open == nil {
		open = func(ctx context.Context, region string) (cloudwatch.ReadAPI, error) {
			cfg, err := awsconfig.Load(ctx, region, nil)
			if err != nil {
				return nil, err
			}
			return awscw.NewFromConfig(cfg), nil
		}
	}
	regions := []string{region}
	if sr := opts.Metrics.SecondaryRegion; sr != "" && sr != region && opts.Source == sourcePublisher {
		if err := config.ValidRegion(sr); err != nil {
			return nil, usageErrorf("invalid metrics.secondary-region: %w", err)
		}
		// The publisher's failover puts a batch the function's region
		// refused there: the counters are the sum of both.
		regions = append(regions, sr)
	}
	counts := map[engine.MetricKey]int64{}
	res.CloudWatch = &cloudwatch.ReadUsage{}
	for _, region := range regions {
		c, err := open(ctx, region)
		if err != nil {
			return nil, err
		}
		part, u, err := cloudwatch.Read(ctx, c, ro)
		if err != nil {
			return nil, fmt.Errorf("read metrics in %s: %w", region, err)
		}
		for k, n := range part {
			counts[k] += n
		}
		res.Regions = append(res.Regions, region)
		res.CloudWatch.ListCalls += u.ListCalls
		res.CloudWatch.GetCalls += u.GetCalls
		res.CloudWatch.MetricsRequested += u.MetricsRequested
	}
	return counts, nil
}

// compareMetricNames orders counter names as metricsOrder does.
func compareMetricNames(a, b string) int {
	ia, ib := slices.Index(metricsOrder, a), slices.Index(metricsOrder, b)
	if ia < 0 {
		ia = len(metricsOrder)
	}
	if ib < 0 {
		ib = len(metricsOrder)
	}
	return cmp.Or(cmp.Compare(ia, ib), cmp.Compare(a, b))
}

// writeMetricsText prints one row per machine, state and event, one column
// per counter that is not zero somewhere, and a total row; a note on stderr
// after it says what was read.
func writeMetricsText(ios *IOStreams, res MetricsResult) error {
	where := "the local store " + res.Store
	if res.Target == string(config.TargetAWS) {
		where = fmt.Sprintf("CloudWatch (%s, namespace %s, %s)", res.Source, res.Namespace, strings.Join(res.Regions, ", "))
	}
	note := fmt.Sprintf("metrics: %s, %s to %s", where, res.Start.Local().Format(time.DateTime), res.End.Local().Format(time.DateTime))
	if len(res.Missing) > 0 {
		note += fmt.Sprintf("; not kept there: %s", strings.Join(res.Missing, ", "))
	}
	names := slices.SortedFunc(maps.Keys(res.Totals), compareMetricNames)
	type row struct{ machine, state, event string }
	var rows []row
	cells := map[row]map[string]int64{}
	for _, c := range res.Counters {
		r := row{c.Machine, c.State, c.Event}
		if cells[r] == nil {
			cells[r] = map[string]int64{}
			rows = append(rows, r)
		}
		cells[r][c.Name] += c.Value
	}
	err := writeMetricsTable(ios.Out, names, len(rows), func(i int) ([3]string, map[string]int64) {
		r := rows[i]
		return [3]string{r.machine, r.state, r.event}, cells[r]
	}, res.Totals)
	fmt.Fprintln(ios.ErrOut, note)
	return err
}

func writeMetricsTable(w io.Writer, names []string, n int, row func(int) ([3]string, map[string]int64), totals map[string]int64) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"MACHINE", "STATE", "EVENT"}
	for _, nm := range names {
		head = append(head, strings.ToUpper(nm))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	line := func(dims [3]string, vals map[string]int64) {
		parts := []string{dash(dims[0]), dash(dims[1]), dash(dims[2])}
		for _, nm := range names {
			parts = append(parts, strconv.FormatInt(vals[nm], 10))
		}
		fmt.Fprintln(tw, strings.Join(parts, "\t"))
	}
	for i := range n {
		line(row(i))
	}
	if n > 1 {
		line([3]string{"total", "", ""}, totals)
	}
	return tw.Flush()
}
