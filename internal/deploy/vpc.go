package deploy

import (
	"fmt"
	"regexp"
	"slices"
)

// Egress is how a function in a VPC reaches the AWS services it calls.
type Egress string

// Egresses.
const (
	// EgressEndpoints: the stack adds an interface VPC endpoint for every
	// service the function calls that has no gateway endpoint (about $7.30
	// a month per zone each), and a security group that lets the
	// function's groups reach them on 443.
	EgressEndpoints Egress = "endpoints"
	// EgressNAT: the subnets already route to the internet through a NAT
	// gateway (about $33 a month plus $0.045 per GB); the stack adds only
	// the free DynamoDB gateway endpoint, which keeps store traffic off
	// the NAT.
	EgressNAT Egress = "nat"
)

// VPC puts the function in a VPC: a lease cache on ElastiCache is reachable
// only there (docs/design.md, "Lease caches"). lfsm.yaml names what exists;
// the stack adds the endpoints and the network-interface permissions.
type VPC struct {
	// ID is the VPC (vpc-...), which the endpoints are created in.
	ID string
	// SubnetIDs are the function's subnets (subnet-...), one per zone
	// at least two for availability; the interface endpoints go there too.
	SubnetIDs []string
	// SecurityGroupIDs are the function's groups (sg-...); the cache's
	// group must let them in on its port.
	SecurityGroupIDs []string
	// RouteTableIDs are the subnets' route tables (rtb-...), where the
	// DynamoDB gateway endpoint adds its route.
	RouteTableIDs []string
	// Egress is endpoints (the default) or nat.
	Egress Egress
}

// Endpoint is a VPC endpoint the stack creates for a VPC deployment.
type Endpoint struct {
	ID string
	// Service is the endpoint service's last name element
	// (com.amazonaws.REGION.<Service>).
	Service string
	// Gateway is a gateway endpoint (DynamoDB: free, routes in the route
	// tables); otherwise an interface endpoint in the subnets.
	Gateway bool
}

// Logical ids of the VPC resources.
const (
	IDEndpointSecurityGroup = "EndpointSecurityGroup"
	idEndpointPrefix        = "Endpoint"
)

var (
	vpcRE    = regexp.MustCompile(`^vpc-[0-9a-f]{8,17}$`)
	subnetRE = regexp.MustCompile(`^subnet-[0-9a-f]{8,17}$`)
	sgRE     = regexp.MustCompile(`^sg-[0-9a-f]{8,17}$`)
	rtbRE    = regexp.MustCompile(`^rtb-[0-9a-f]{8,17}$`)
)

// validate reports every bad VPC setting, naming the lfsm.yaml key.
func (v *VPC) validate(bad func(string, ...any)) {
	if !vpcRE.MatchString(v.ID) {
		bad("aws.vpc.id %q: want a VPC id (vpc-0123abcd...)", v.ID)
	}
	ids := func(key string, list []string, re *regexp.Regexp, want string) {
		if len(list) == 0 {
			bad("aws.vpc.%s: none given; want at least one %s id", key, want)
		}
		for _, id := range list {
			if !re.MatchString(id) {
				bad("aws.vpc.%s: %q is not a %s id", key, id, want)
			}
		}
		if len(list) > 16 {
			bad("aws.vpc.%s: %d given; Lambda takes at most 16", key, len(list))
		}
	}
	ids("subnets", v.SubnetIDs, subnetRE, "subnet (subnet-...)")
	ids("security-groups", v.SecurityGroupIDs, sgRE, "security group (sg-...)")
	if len(v.SecurityGroupIDs) > 5 {
		bad("aws.vpc.security-groups: %d given; Lambda takes at most 5", len(v.SecurityGroupIDs))
	}
	ids("route-tables", v.RouteTableIDs, rtbRE, "route table (rtb-...) for the DynamoDB gateway endpoint")
	if v.Egress != EgressEndpoints && v.Egress != EgressNAT {
		bad("aws.vpc.egress %q: want %s or %s", v.Egress, EgressEndpoints, EgressNAT)
	}
}

// endpoints are the VPC endpoints the function needs with settings st: the
// DynamoDB gateway always (the store), and with EgressEndpoints an
// interface endpoint for each other service the handler itself calls. The
// event source mappings' pollers and the failure destinations run in
// Lambda's service, outside the VPC, and the logs (EMF included) leave
// through the runtime's stdout, so neither needs one; the metrics
// publisher's PutMetricData does (CloudWatch's endpoint service is
// "monitoring").
func endpoints(st Settings) []Endpoint {
	eps := []Endpoint{{ID: idEndpointPrefix + "DynamoDB", Service: "dynamodb", Gateway: true}}
	if st.VPC.Egress != EgressEndpoints {
		return eps
	}
	switch st.Dispatch {
	case DispatchSQS, DispatchSNSSQS:
		eps = append(eps, Endpoint{ID: idEndpointPrefix + "SQS", Service: "sqs"})
	case DispatchSNS:
		eps = append(eps, Endpoint{ID: idEndpointPrefix + "SNS", Service: "sns"})
	case DispatchKinesis:
		eps = append(eps, Endpoint{ID: idEndpointPrefix + "Kinesis", Service: "kinesis-streams"})
	}
	if st.Metrics != nil {
		// PutMetricData is a call of the handler's, unlike the EMF lines.
		eps = append(eps, Endpoint{ID: idEndpointPrefix + "Monitoring", Service: "monitoring"})
	}
	return eps
}

// vpcConfig is the function's VpcConfig.
func (r *renderer) vpcConfig() map[string]any {
	return map[string]any{
		"SubnetIds":        strings2any(r.st.VPC.SubnetIDs),
		"SecurityGroupIds": strings2any(r.st.VPC.SecurityGroupIDs),
	}
}

func strings2any(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// vpc renders the endpoints and, for interface endpoints, their group.
func (r *renderer) vpc() {
	v := r.st.VPC
	interfaces := slices.ContainsFunc(r.m.Endpoints, func(e Endpoint) bool { return !e.Gateway })
	if interfaces {
		var ingress []any
		for _, sg := range v.SecurityGroupIDs {
			ingress = append(ingress, map[string]any{
				"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "SourceSecurityGroupId": sg,
				"Description": "HTTPS from the lfsm function",
			})
		}
		r.add(IDEndpointSecurityGroup, &Resource{Type: "AWS::EC2::SecurityGroup", Properties: map[string]any{
			"GroupDescription":     "lfsm: the function's groups reach the VPC endpoints on 443",
			"VpcId":                v.ID,
			"SecurityGroupIngress": ingress,
			"Tags":                 r.tags(),
		}})
	}
	for _, e := range r.m.Endpoints {
		props := map[string]any{
			"VpcId":       v.ID,
			"ServiceName": Sub("com.amazonaws.${AWS::Region}." + e.Service),
		}
		if e.Gateway {
			props["VpcEndpointType"] = "Gateway"
			props["RouteTableIds"] = strings2any(v.RouteTableIDs)
		} else {
			props["VpcEndpointType"] = "Interface"
			props["SubnetIds"] = strings2any(v.SubnetIDs)
			props["SecurityGroupIds"] = []any{GetAtt(IDEndpointSecurityGroup, "GroupId")}
			props["PrivateDnsEnabled"] = true
		}
		r.add(e.ID, &Resource{Type: "AWS::EC2::VPCEndpoint", Properties: props})
	}
}

// eniStatements are the network-interface permissions Lambda needs to
// attach a function to its subnets (those of the managed policy
// AWSLambdaVPCAccessExecutionRole), scoped as far as IAM allows.
func (m *Model) eniStatements() []Statement {
	v := m.Settings.VPC
	eni := Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:network-interface/*")
	create := []any{eni}
	for _, s := range v.SubnetIDs {
		create = append(create, Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:subnet/"+s))
	}
	for _, s := range v.SecurityGroupIDs {
		create = append(create, Sub("arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:security-group/"+s))
	}
	return []Statement{
		{Sid: "NetworkInterfaceCreate", Action: []string{"ec2:CreateNetworkInterface"}, Resource: create},
		{Sid: "NetworkInterfaceManage", Action: []string{"ec2:AssignPrivateIpAddresses", "ec2:DeleteNetworkInterface", "ec2:UnassignPrivateIpAddresses"}, Resource: []any{eni}},
		{
			Sid:       "NetworkInterfaceDescribe",
			Action:    []string{"ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets"},
			Resource:  []any{"*"},
			Condition: map[string]any{"StringEquals": map[string]any{"aws:RequestedRegion": Ref("AWS::Region")}},
			Why: "ec2:DescribeNetworkInterfaces and ec2:DescribeSubnets allow no resource-level permission (IAM's service authorization reference lists no resource type for them), " +
				"and Lambda calls them to attach the function to its subnets; the statement is limited to the stack's region by aws:RequestedRegion",
		},
	}
}

func (e Endpoint) String() string { return fmt.Sprintf("%s (%s)", e.ID, e.Service) }
