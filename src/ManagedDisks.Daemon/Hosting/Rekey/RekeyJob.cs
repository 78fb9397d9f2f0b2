using System.Diagnostics;
using ManagedDisks.BlockDevices;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;
using ManagedDisks.Encryption.Reencryption;

namespace ManagedDisks.Daemon.Hosting.Rekey;

internal enum RekeyState
{
    Running,
    Completed,
    /// <summary>Stopped by an error; the header keeps the progress and a new request resumes it.</summary>
    Failed,
    /// <summary>The disk stopped being served or the daemon stopped; it resumes when the disk is served again.</summary>
    Interrupted,
}

/// <summary>
/// One run of a disk's re-key: converts chunk after chunk, each step serialised with the
/// disk's other header changes, until it is done, the disk stops being served, or the daemon stops.
/// </summary>
internal sealed class RekeyJob(string disk, EncryptedDisk device, KeySlot newSlot, DateTimeOffset started, bool resumed, string identity)
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly long _firstWatermark = device.Reencryption!.Watermark;
    private readonly DiskReencryption _reencryption = device.Reencryption!;
    private volatile string? _error;
    private volatile int _state = (int)RekeyState.Running;

    public string Disk => disk;
    public EncryptedDisk Device => device;
    public KeySlot NewSlot => newSlot;
    /// <summary>When the re-key began (before any restart that resumed it).</summary>
    public DateTimeOffset Started => started;
    public bool Resumed => resumed;
    /// <summary>Whose key the disk uses, for the audit log.</summary>
    public string Identity => identity;
    public RekeyState State => (RekeyState)_state;
    public string? Error => _error;
    public long Watermark => _reencryption.Watermark;
    public long Size => _reencryption.Size;
    public double Percent => Size == 0 ? 100 : 100.0 * Watermark / Size;

    /// <summary>Bytes per second re-encrypted by this run.</summary>
    public double Rate => (Watermark - _firstWatermark) / Math.Max(_clock.Elapsed.TotalSeconds, 1e-3);

    public Task Completion { get; private set; } = Task.CompletedTask;

    public void Start(DiskManager disks, Action<RekeyJob> report, CancellationToken stopping) =>
        Completion = Task.Run(() => RunAsync(disks, report, stopping));

    private async Task RunAsync(DiskManager disks, Action<RekeyJob> report, CancellationToken stopping)
    {
        try
        {
            while (!_reencryption.IsComplete)
            {
                stopping.ThrowIfCancellationRequested();
                await disks.RunSerializedAsync(async () =>
                {
                    var current = disks.Find(disk);
                    if (current is null || !ReferenceEquals(current.Device, device))
                        throw new OperationCanceledException("the disk is no longer served");
                    var (header, sequence) = await _reencryption.ConvertNextChunkAsync(current.Gate, current.Header, current.Sequence, stopping).ConfigureAwait(false);
                    disks.Replace(current with { Header = header, Sequence = sequence });
                }).ConfigureAwait(false);
                report(this);
            }
            _state = (int)RekeyState.Completed;
        }
        catch (OperationCanceledException e)
        {
            _error = stopping.IsCancellationRequested ? "the daemon is stopping" : e.Message;
            _state = (int)RekeyState.Interrupted;
        }
        catch (Exception e) when (e is BlockDeviceException or ObjectDisposedException && disks.Find(disk)?.Device != device)
        {
            _error = $"the disk was shut down: {e.Message}";
            _state = (int)RekeyState.Interrupted;
        }
        catch (Exception e) when (e is BlockDeviceException or DiskFormatException or IOException or ObjectDisposedException)
        {
            _error = e.Message;
            _state = (int)RekeyState.Failed;
        }
        report(this);
    }
}
