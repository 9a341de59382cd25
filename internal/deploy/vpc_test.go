package deploy

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func vpcSettings(d Dispatch, egress Egress) Settings {
	return Settings{Project: "seed", Dispatch: d, VPC: &VPC{
		ID:               "vpc-0123456789abcdef0",
		SubnetIDs:        []string{"subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"},
		SecurityGroupIDs: []string{"sg-0ccccccccccccccc3"},
		RouteTableIDs:    []string{"rtb-0ddddddddddddddd4"},
		Egress:           egress,
	}}
}

// TestVPCTemplate: a deployment in a VPC (for a lease cache on
// ElastiCache) attaches the function to the subnets, adds the DynamoDB
// gateway endpoint always and interface endpoints for the dispatch's
// service unless the subnets have a NAT, grants the network-interface
// permissions, and passes CloudFormation's schemas, for every dispatch.
func TestVPCTemplate(t *testing.T) {
	interfaceFor := map[Dispatch]string{
		DispatchSQS: "sqs", DispatchSNSSQS: "sqs", DispatchSNS: "sns", DispatchKinesis: "kinesis-streams", DispatchDynamoDB: "",
	}
	for _, d := range Dispatches() {
		for _, egress := range []Egress{EgressEndpoints, EgressNAT} {
			t.Run(string(d)+"/"+string(egress), func(t *testing.T) {
				tm := build(t, vpcSettings(d, egress)).Template()
				assertValid(t, tm)
				fn := tm.Resources[IDFunction].Properties
				wantVPC := map[string]any{
					"SubnetIds":        []any{"subnet-0aaaaaaaaaaaaaaa1", "subnet-0bbbbbbbbbbbbbbb2"},
					"SecurityGroupIds": []any{"sg-0ccccccccccccccc3"},
				}
				if diff := cmp.Diff(wantVPC, fn["VpcConfig"]); diff != "" {
					t.Errorf("VpcConfig (-want +got):\n%s", diff)
				}
				var services []string
				for id, r := range tm.Resources {
					if r.Type != "AWS::EC2::VPCEndpoint" {
						continue
					}
					name := r.Properties["ServiceName"].(map[string]any)["Fn::Sub"].(string)
					svc := strings.TrimPrefix(name, "com.amazonaws.${AWS::Region}.")
					services = append(services, svc)
					if typ := r.Properties["VpcEndpointType"]; (svc == "dynamodb") != (typ == "Gateway") {
						t.Errorf("%s: %s endpoint of type %v", id, svc, typ)
					}
				}
				want := []string{"dynamodb"}
				if s := interfaceFor[d]; s != "" && egress == EgressEndpoints {
					want = append(want, s)
				}
				if diff := cmp.Diff(want, services, sortStrings); diff != "" {
					t.Errorf("endpoints (-want +got):\n%s", diff)
				}
				_, hasSG := tm.Resources[IDEndpointSecurityGroup]
				if hasSG != (len(want) > 1) {
					t.Errorf("endpoint security group present %v with endpoints %v", hasSG, want)
				}
				sids := map[string]bool{}
				for _, s := range statements(t, tm) {
					sids[s.(map[string]any)["Sid"].(string)] = true
				}
				for _, sid := range []string{"NetworkInterfaceCreate", "NetworkInterfaceManage", "NetworkInterfaceDescribe"} {
					if !sids[sid] {
						t.Errorf("no %s statement in the function policy", sid)
					}
				}
				why := tm.Resources[IDFunctionRole].Metadata["lfsm"].(map[string]any)["why"].(map[string]any)
				if !strings.Contains(why["NetworkInterfaceDescribe"].(string), "no resource-level permission") {
					t.Errorf("role metadata does not explain NetworkInterfaceDescribe: %v", why)
				}
			})
		}
	}
	t.Run("the endpoint group admits the function's groups on 443", func(t *testing.T) {
		tm := build(t, vpcSettings(DispatchSQS, EgressEndpoints)).Template()
		b, _ := json.Marshal(tm.Resources[IDEndpointSecurityGroup].Properties["SecurityGroupIngress"])
		want := `[{"Description":"HTTPS from the lfsm function","FromPort":443,"IpProtocol":"tcp","SourceSecurityGroupId":"sg-0ccccccccccccccc3","ToPort":443}]`
		if string(b) != want {
			t.Errorf("ingress\n got %s\nwant %s", b, want)
		}
	})
	t.Run("the metrics publisher reaches CloudWatch through its endpoint", func(t *testing.T) {
		for _, egress := range []Egress{EgressEndpoints, EgressNAT} {
			st := vpcSettings(DispatchSQS, egress)
			st.Metrics = &Metrics{}
			tm := build(t, st).Template()
			assertValid(t, tm)
			r, ok := tm.Resources["EndpointMonitoring"]
			if ok != (egress == EgressEndpoints) {
				t.Errorf("egress %s: monitoring endpoint present %v", egress, ok)
			}
			if ok && r.Properties["ServiceName"].(map[string]any)["Fn::Sub"] != "com.amazonaws.${AWS::Region}.monitoring" {
				t.Errorf("monitoring endpoint service %v", r.Properties["ServiceName"])
			}
		}
	})
	t.Run("no VPC, no VPC pieces", func(t *testing.T) {
		tm := build(t, Settings{Project: "seed"}).Template()
		if _, ok := tm.Resources[IDFunction].Properties["VpcConfig"]; ok {
			t.Error("VpcConfig without aws.vpc")
		}
		for id, r := range tm.Resources {
			if strings.HasPrefix(r.Type, "AWS::EC2::") {
				t.Errorf("%s: %s without aws.vpc", id, r.Type)
			}
		}
	})
}

var sortStrings = cmp.Transformer("sort", func(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// TestVPCTemplateGolden: the whole SQS template in a VPC (-update rewrites).
func TestVPCTemplateGolden(t *testing.T) {
	got, err := build(t, vpcSettings(DispatchSQS, EgressEndpoints)).Template().YAML()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "golden", "sqs-vpc.yaml")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if d := cmp.Diff(string(want), string(got)); d != "" {
		t.Errorf("template differs from %s (-want +got):\n%s", path, d)
	}
}

func TestVPCSettingsValidate(t *testing.T) {
	st := Settings{Project: "p", VPC: &VPC{ID: "vpc-1", SubnetIDs: []string{"subnet-zz"}, Egress: "carrier"}}
	_, err := Build(seedSpec(t), st)
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{`aws.vpc.id "vpc-1"`, `aws.vpc.subnets: "subnet-zz" is not a subnet`,
		"aws.vpc.security-groups: none given", "aws.vpc.route-tables: none given", `aws.vpc.egress "carrier": want endpoints or nat`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	sf := vpcSettings(DispatchSQS, EgressEndpoints)
	sf.Mode = ModeStepFunctions
	if _, err := Build(seedSpec(t), sf); err == nil || !strings.Contains(err.Error(), "aws.vpc: only with mode events") {
		t.Errorf("a VPC in stepfunctions mode: %v, want a refusal", err)
	}
	// The default egress is endpoints.
	d := vpcSettings(DispatchSQS, "")
	if got := d.WithDefaults().VPC.Egress; got != EgressEndpoints || d.VPC.Egress != "" {
		t.Errorf("default egress %q (input changed to %q), want endpoints and the input untouched", got, d.VPC.Egress)
	}
}
