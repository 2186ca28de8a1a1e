# Shared by the reference solutions of steps 2-4: run a command on the instance over
# OpenSSH, through `vpclab connect`, with the lab's key.
on_instance() {
  local ip
  ip=$(aws ec2 describe-instances --filters "Name=tag:Name,Values=$LAB_INSTANCE_NAME" \
    Name=instance-state-name,Values=running \
    --query 'Reservations[0].Instances[0].PublicIpAddress' --output text)
  ssh -F /dev/null -i "$LAB_KEY_NAME.pem" -o BatchMode=yes -o IdentitiesOnly=yes \
    -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=known_hosts \
    -o ProxyCommand='vpclab connect %h %p' "ec2-user@$ip" "$1"
}
