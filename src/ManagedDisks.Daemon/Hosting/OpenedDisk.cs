using ManagedDisks.BlockDevices;
using ManagedDisks.Daemon.Configuration;
using ManagedDisks.Encryption;
using ManagedDisks.Encryption.Format;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>A served disk: its settings, the backing file, the encrypting device over it, and its current header.</summary>
internal sealed record OpenedDisk(DiskSettings Settings, SparseFile File, EncryptedDisk Device, DiskHeader Header, ulong Sequence);
