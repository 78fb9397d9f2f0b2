using System.Net;
using System.Net.Sockets;
using System.Text;
using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Daemon.Hosting;

/// <summary>The hint printed when the daemon runs on its embedded default: how to use what it serves.</summary>
internal static class AttachInstructions
{
    public static string For(DaemonSettings settings, DiskRegistry registry)
    {
        var text = new StringBuilder();
        var unix = settings.Listen.Select(l => l.EndPoint).OfType<UnixDomainSocketEndPoint>().FirstOrDefault();
        var tcp = settings.Listen.Select(l => l.EndPoint).OfType<IPEndPoint>().FirstOrDefault();
        foreach (var export in registry.List())
        {
            text.AppendLine();
            text.AppendLine($"Disk '{export.Name}' ({Units.FormatSize(export.Device.Size)}) is ready.");
            text.AppendLine("Attach it as a block device (needs root and the nbd kernel module):");
            text.AppendLine("    sudo modprobe nbd");
            if (unix is not null) text.AppendLine($"    sudo nbd-client -unix {unix} /dev/nbd0 -N {export.Name} -b 4096");
            if (tcp is not null) text.AppendLine($"    sudo nbd-client {tcp.Address} {tcp.Port} /dev/nbd0 -N {export.Name} -b 4096");
            text.AppendLine("  detach it with:  sudo nbd-client -d /dev/nbd0");
            text.AppendLine("Or open it without the kernel:");
            if (unix is not null)
            {
                text.AppendLine($"    nbdinfo 'nbd+unix:///{export.Name}?socket={unix}'");
                text.AppendLine($"    qemu-img info -f raw 'nbd+unix:///{export.Name}?socket={unix}'");
            }
            if (tcp is not null) text.AppendLine($"    nbdinfo nbd://{tcp.Address}:{tcp.Port}/{export.Name}");
        }
        text.AppendLine();
        text.AppendLine("Press Ctrl+C to stop.");
        return text.ToString();
    }
}
