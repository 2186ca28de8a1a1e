"""boto3 (botocore 1.43 speaks Smithy RPC v2 CBOR to CloudWatch) against vpclab: puts
datapoints, reads statistics and metric math back with their timestamps, and checks
that errors carry CloudWatch's codes. Run by tests/api/cloudwatch.rs with
VPCLAB_ENDPOINT set."""

import datetime
import os
import sys

try:
    import boto3
    import botocore.exceptions
except ImportError:
    sys.exit("boto3 is not installed: run `bash scripts/install-test-deps`")

cw = boto3.client("cloudwatch", endpoint_url=os.environ["VPCLAB_ENDPOINT"], region_name="us-east-1")
protocol = cw.meta.service_model.protocol
print("protocol", protocol)


def expect_error(code, fn, **kw):
    try:
        fn(**kw)
    except botocore.exceptions.ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, f"expected {code}, got {got}: {e}"
        return
    raise AssertionError(f"expected {code}, call succeeded")


now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
base = now - datetime.timedelta(minutes=10)
base = base.replace(second=0)
dims = [{"Name": "Queue", "Value": "orders"}]
cw.put_metric_data(
    Namespace="Shop",
    MetricData=[
        {"MetricName": "Depth", "Dimensions": dims, "Timestamp": base + datetime.timedelta(seconds=1), "Value": 4.0, "Unit": "Count"},
        {"MetricName": "Depth", "Dimensions": dims, "Timestamp": base + datetime.timedelta(seconds=2), "Value": 8.0, "Unit": "Count"},
        {"MetricName": "Depth", "Dimensions": dims, "Timestamp": base + datetime.timedelta(seconds=61),
         "StatisticValues": {"SampleCount": 2, "Sum": 30, "Minimum": 10, "Maximum": 20}, "Unit": "Count"},
    ],
)
stats = cw.get_metric_statistics(
    Namespace="Shop", MetricName="Depth", Dimensions=dims,
    StartTime=base, EndTime=base + datetime.timedelta(minutes=2), Period=60,
    Statistics=["Sum", "Average", "Maximum"],
)
points = sorted(stats["Datapoints"], key=lambda p: p["Timestamp"])
assert len(points) == 2, stats
assert points[0]["Timestamp"] == base, (points[0]["Timestamp"], base)
assert points[0]["Sum"] == 12.0 and points[0]["Average"] == 6.0, points[0]
assert points[1]["Maximum"] == 20.0, points[1]
assert points[1]["Unit"] == "Count", points[1]

data = cw.get_metric_data(
    MetricDataQueries=[
        {"Id": "d", "MetricStat": {"Metric": {"Namespace": "Shop", "MetricName": "Depth", "Dimensions": dims}, "Period": 60, "Stat": "Sum"}},
        {"Id": "twice", "Expression": "d * 2"},
    ],
    StartTime=base, EndTime=base + datetime.timedelta(minutes=2), ScanBy="TimestampAscending",
)
r = {x["Id"]: x for x in data["MetricDataResults"]}
assert r["twice"]["Values"] == [24.0, 60.0], r
assert r["twice"]["Timestamps"][0] == base, r["twice"]["Timestamps"]

metrics = cw.list_metrics(Namespace="Shop")["Metrics"]
assert metrics == [{"Namespace": "Shop", "MetricName": "Depth", "Dimensions": dims}], metrics

cw.put_metric_alarm(
    AlarmName="deep", Namespace="Shop", MetricName="Depth", Dimensions=dims, Statistic="Maximum",
    Period=60, EvaluationPeriods=3, DatapointsToAlarm=2, Threshold=100, ComparisonOperator="GreaterThanThreshold",
)
alarm = cw.describe_alarms(AlarmNames=["deep"])["MetricAlarms"][0]
assert alarm["DatapointsToAlarm"] == 2 and alarm["Threshold"] == 100.0, alarm
assert isinstance(alarm["StateUpdatedTimestamp"], datetime.datetime), alarm

expect_error("InvalidParameterValue", cw.put_metric_data, Namespace="Shop",
             MetricData=[{"MetricName": "X", "Value": 1, "Unit": "Furlongs"}])
expect_error("ResourceNotFound", cw.get_dashboard, DashboardName="none")
expect_error("InvalidParameterCombination", cw.get_metric_statistics, Namespace="Shop", MetricName="Depth",
             StartTime=base, EndTime=base + datetime.timedelta(minutes=2), Period=60)
print("ok")
