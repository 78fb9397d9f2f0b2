using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>
/// A served disk: its settings, the backing file, the encrypting device over it, the gate the
/// clients reach it through (paused for snapshots, closed at a shutdown), and its current header.
/// </summary>
internal sealed record OpenedDisk(DiskSettings Settings, SparseFile File, EncryptedDisk Device, GatedDevice Gate, DiskHeader Header, ulong Sequence);
