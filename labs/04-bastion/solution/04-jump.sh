#!/usr/bin/env bash
# Reference solution, step 4: ssh -J through the bastion, the key staying here.
set -euo pipefail
ip_of() {
  aws ec2 describe-instances --filters "Name=tag:Name,Values=$1" \
    Name=instance-state-name,Values=running \
    --query "Reservations[0].Instances[0].$2" --output text
}
BASTION=$(ip_of bastion PublicIpAddress)
APP=$(ip_of "$LAB_APP_NAME" PrivateIpAddress)
cat > jump.config <<CONFIG
Host bastion
  HostName $BASTION
  User ec2-user
  IdentityFile $PWD/$LAB_KEY_NAME.pem
  ProxyCommand vpclab connect %h %p
Host 10.*
  User ec2-user
  IdentityFile $PWD/$LAB_KEY_NAME.pem
Host *
  IdentitiesOnly yes
  BatchMode yes
  StrictHostKeyChecking accept-new
  UserKnownHostsFile $PWD/known_hosts
CONFIG
# The second login runs end to end from here, inside a channel the bastion opened.
ssh -F jump.config -J bastion "$APP" 'touch reached-through-bastion; hostname -I' | grep -q "$APP"
vpclab lab answer key-stays-home no
