#!/usr/bin/env bash
# Reference solution, step 2: a path from the internet gateway to app on TCP 22, one
# analysis, and the two answers it gives.
set -euo pipefail
VPC=$(aws ec2 describe-vpcs --filters Name=tag:Name,Values=app-vpc --query 'Vpcs[0].VpcId' --output text)
IGW=$(aws ec2 describe-internet-gateways --filters "Name=attachment.vpc-id,Values=$VPC" \
  --query 'InternetGateways[0].InternetGatewayId' --output text)
APP=$(aws ec2 describe-instances --filters Name=tag:Name,Values=app \
  Name=instance-state-name,Values=running --query 'Reservations[0].Instances[0].InstanceId' --output text)
PATH_ID=$(aws ec2 create-network-insights-path --source "$IGW" --destination "$APP" \
  --protocol tcp --destination-port 22 \
  --query NetworkInsightsPath.NetworkInsightsPathId --output text)
ID=$(aws ec2 start-network-insights-analysis --network-insights-path-id "$PATH_ID" \
  --query NetworkInsightsAnalysis.NetworkInsightsAnalysisId --output text)
CODE=$(aws ec2 describe-network-insights-analyses --network-insights-analysis-ids "$ID" \
  --query 'NetworkInsightsAnalyses[0].Explanations[0].ExplanationCode' --output text)
DIRECTION=$(aws ec2 describe-network-insights-analyses --network-insights-analysis-ids "$ID" \
  --query 'NetworkInsightsAnalyses[0].Explanations[0].Direction' --output text)
vpclab lab answer explanation-code "$CODE"
vpclab lab answer which-way "$DIRECTION"
