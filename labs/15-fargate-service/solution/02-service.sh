#!/usr/bin/env bash
# Reference solution, step 2: a Fargate task definition and a service of two tasks
# registered in the target group.
set -euo pipefail
aws ecs create-cluster --cluster-name "$LAB_CLUSTER" > /dev/null
cat > hello.json <<'JSON'
{
  "family": "hello",
  "requiresCompatibilities": ["FARGATE"],
  "networkMode": "awsvpc",
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [
    { "name": "web", "image": "nginxdemos/hello", "essential": true,
      "portMappings": [{ "containerPort": 80, "protocol": "tcp" }] }
  ]
}
JSON
aws ecs register-task-definition --cli-input-json file://hello.json > /dev/null
VPC=$(aws ec2 describe-vpcs --filters Name=is-default,Values=true \
  --query 'Vpcs[0].VpcId' --output text)
SUBNETS=$(aws ec2 describe-subnets --filters Name=vpc-id,Values="$VPC" \
  --query 'sort_by(Subnets, &AvailabilityZone)[0:2].SubnetId' --output text | tr '\t' ',')
TASK_SG=$(aws ec2 describe-security-groups --group-names "$LAB_TASK_SG" \
  --query 'SecurityGroups[0].GroupId' --output text)
TG=$(aws elbv2 describe-target-groups --names "$LAB_TG" \
  --query 'TargetGroups[0].TargetGroupArn' --output text)
# A public address lets a task in a default (public) subnet pull its image on AWS.
aws ecs create-service --cluster "$LAB_CLUSTER" --service-name "$LAB_SERVICE" \
  --task-definition hello --desired-count 2 --launch-type FARGATE \
  --network-configuration "awsvpcConfiguration={subnets=[$SUBNETS],securityGroups=[$TASK_SG],assignPublicIp=ENABLED}" \
  --load-balancers "targetGroupArn=$TG,containerName=web,containerPort=80" \
  --health-check-grace-period-seconds 600 > /dev/null
aws ecs wait services-stable --cluster "$LAB_CLUSTER" --services "$LAB_SERVICE"
