using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Keys;
using ManagedDisks.Keys.Agent;
using ManagedDisks.Keys.Audit;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ManagedDisks.Daemon.Hosting.Rekey;

/// <summary>
/// The re-keys of the served disks: starts one on request, resumes one whenever a disk whose
/// header records a re-key is served (after a crash, a restart, an attach), reports progress,
/// and stops them before the disks close. Every start, resume, end and failure is logged and audited.
/// </summary>
internal sealed class RekeyJobs : IHostedService
{
    private readonly DaemonSettings _settings;
    private readonly DiskManager _disks;
    private readonly ILogger<RekeyJobs> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _gate = new();
    private readonly Dictionary<string, RekeyJob> _jobs = new(StringComparer.Ordinal);
    private readonly Dictionary<RekeyJob, int> _reportedDecile = [];

    public RekeyJobs(DaemonSettings settings, DiskManager disks, ILogger<RekeyJobs> logger)
    {
        _settings = settings;
        _disks = disks;
        _logger = logger;
        // Subscribed before the disks open (hosted services are all built before any starts).
        disks.Served += ResumeIfRecorded;
    }

    public RekeyJob? Find(string disk)
    {
        lock (_gate) return _jobs.GetValueOrDefault(disk);
    }

    /// <summary>Starts re-keying a served disk, or resumes the one its header records.</summary>
    /// <exception cref="AdminException">Unknown or read-only disk, one already running (409), or a key problem.</exception>
    public async Task<RekeyJob> BeginAsync(string name)
    {
        ThrowIfRunning(name, device: null);
        OpenedDisk disk;
        bool resumed;
        try
        {
            (disk, resumed) = await _disks.WithKeysAsync(async opener =>
            {
                var served = _disks.Find(name) ?? throw new AdminException($"no disk named '{name}' is served", notFound: true);
                if (served.Settings.ReadOnly) throw new AdminException($"disk '{name}' is read-only; it cannot be re-encrypted");
                if (served.Device.Reencryption is not null) return (served, true); // a failed run: carry on from its watermark
                var begun = await opener.BeginReencryptionAsync(served).ConfigureAwait(false);
                _disks.Replace(begun);
                return (begun, false);
            }).ConfigureAwait(false);
        }
        catch (Exception e) when (e is KeyStoreException or DiskFormatException or BlockDeviceException or ConfigException)
        {
            throw new AdminException($"disk '{name}' cannot be re-keyed: {e.Message}");
        }
        return Launch(disk, resumed) ?? throw new AdminException(RunningMessage(name));
    }

    private void ResumeIfRecorded(OpenedDisk disk)
    {
        if (disk.Device.Reencryption is not null && !disk.Settings.ReadOnly) Launch(disk, resumed: true);
    }

    private void ThrowIfRunning(string name, object? device)
    {
        lock (_gate)
            if (_jobs.TryGetValue(name, out var job) && job.State == RekeyState.Running && (device is null || ReferenceEquals(job.Device, device)))
                throw new AdminException(RunningMessage(name));
    }

    private string RunningMessage(string name) =>
        $"a re-key of disk '{name}' is already running ({Find(name)?.Percent ?? 0:0.0}% done); follow it with `managed-disks disk rekey {name}`";

    /// <summary>Runs a job for the disk's re-key, unless one already runs on this very device.</summary>
    private RekeyJob? Launch(OpenedDisk disk, bool resumed)
    {
        var state = disk.Header.Reencryption!;
        var job = new RekeyJob(disk.Settings.Name, disk.Device, state.KeySlots[0], state.Started, resumed, IdentityOf(disk.Settings));
        lock (_gate)
        {
            if (_jobs.TryGetValue(job.Disk, out var running) && running.State == RekeyState.Running && ReferenceEquals(running.Device, disk.Device))
                return null;
            _jobs[job.Disk] = job; // a run on a device closed since ends by itself at its next step
            _reportedDecile[job] = (int)(job.Percent / 10);
        }
        if (resumed) RekeyLog.Resumed(_logger, job.Disk, job.Percent, job.Watermark, job.Size);
        else RekeyLog.Started(_logger, job.Disk, KeyName(job.NewSlot));
        Audit(job, resumed ? "resumed" : "started", $"{job.Watermark} of {job.Size} bytes under the new DEK");
        job.Start(_disks, Report, _stopping.Token);
        return job;
    }

    /// <summary>Called after every step and once at the end.</summary>
    private void Report(RekeyJob job)
    {
        switch (job.State)
        {
            case RekeyState.Running:
                int decile = (int)(job.Percent / 10);
                lock (_gate)
                {
                    if (decile <= _reportedDecile.GetValueOrDefault(job)) return;
                    _reportedDecile[job] = decile;
                }
                RekeyLog.Progress(_logger, job.Disk, decile * 10);
                break;
            case RekeyState.Completed:
                RekeyLog.Completed(_logger, job.Disk, job.Size, KeyName(job.NewSlot), job.Rate / (1 << 20));
                Audit(job, "completed", $"{job.Size} bytes under the new DEK; the old DEK is wiped");
                break;
            case RekeyState.Interrupted:
                RekeyLog.Interrupted(_logger, job.Disk, job.Percent, job.Error!);
                Audit(job, "interrupted", $"at {job.Watermark} of {job.Size} bytes: {job.Error}");
                break;
            case RekeyState.Failed:
                RekeyLog.Failed(_logger, job.Disk, job.Percent, job.Error!);
                Audit(job, "failed", $"at {job.Watermark} of {job.Size} bytes: {job.Error}");
                break;
        }
        if (job.State != RekeyState.Running)
            lock (_gate) _reportedDecile.Remove(job);
    }

    private static string KeyName(KeySlot slot) => $"{slot.KeyStore}/{slot.KeyName}@{slot.KeyVersion}";

    /// <summary>The identity the disk's keys are used as: its set's, or the platform's.</summary>
    private string IdentityOf(DiskSettings disk) => disk.EncryptionSet is { } set
        ? _settings.EncryptionSets.FirstOrDefault(s => s.Name == set)?.Identity ?? $"encryption-set:{set}"
        : KeyAgent.PlatformIdentity;

    private void Audit(RekeyJob job, string result, string detail)
    {
        try
        {
            AuditLog.Open(_settings.AuditLog).Append(new AuditRecord(job.Identity, "rekey", result, job.NewSlot.KeyStore, job.NewSlot.KeyName, job.NewSlot.KeyVersion, job.Disk, detail));
        }
        catch (IOException e)
        {
            RekeyLog.Failed(_logger, job.Disk, job.Percent, $"the audit log cannot be written: {e.Message}");
        }
    }

    /// <summary>Resumes the re-keys of disks already served when this service starts.</summary>
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (var disk in _disks.Disks) ResumeIfRecorded(disk);
        return Task.CompletedTask;
    }

    /// <summary>Lets each job finish its chunk and stop, before the disks are closed.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        Task[] running;
        lock (_gate) running = _jobs.Values.Select(j => j.Completion).ToArray();
        try
        {
            await Task.WhenAll(running).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The host's patience ran out; closing the disk still waits for a step in progress.
        }
    }
}
