using System.Diagnostics.Metrics;
using ManagedDisks.Keys.Lifecycle;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// The key lifecycle as a scraper sees it: seconds left in each disk's grace period (alert on
/// it before the disk goes away), and how many disks are in each state.
/// </summary>
internal static class LifecycleMetrics
{
    private static readonly Meter Meter = new("ManagedDisks.Lifecycle");
    private static int _published;

    public static void Publish(GraceTimers timers, DiskManager disks, TimeProvider time)
    {
        if (Interlocked.Exchange(ref _published, 1) == 1) return;
        Meter.CreateObservableGauge("grace_seconds_left", () => timers.All.Where(t => !t.Expired).Select(t =>
                new Measurement<double>(Math.Max(0, (t.Deadline - time.GetUtcNow()).TotalSeconds),
                    new KeyValuePair<string, object?>("disk", t.Disk), new KeyValuePair<string, object?>("kind", t.Kind.ToString().ToLowerInvariant()))),
            unit: "s", description: "Seconds until a disk whose key is not usable is shut down");
        Meter.CreateObservableGauge("disks", () =>
            {
                var served = disks.Disks.Select(d => timers.For(d.Settings.Name) is null ? "serving" : "grace");
                var unserved = disks.Unserved.Select(d => d.Reason == UnservedReason.Detached ? "detached"
                    : timers.For(d.Settings.Name) is { Expired: true } ? "shut-down" : "waiting-for-key");
                return served.Concat(unserved).GroupBy(state => state)
                    .Select(g => new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("state", g.Key)));
            },
            description: "Disks by state: serving, grace, shut-down, waiting-for-key, detached");
    }
}
