using ManagedDisks.Daemon.Configuration;

namespace ManagedDisks.Daemon.Commands;

/// <summary>How every command reads its configuration: --config, or the embedded default in the working directory.</summary>
internal static class CommandSettings
{
    /// <summary>Null after printing the configuration's problems; callers then exit with 2.</summary>
    public static DaemonSettings? Load(string? configPath)
    {
        try
        {
            return configPath is null ? ConfigLoader.LoadEmbeddedDefault(Environment.CurrentDirectory) : ConfigLoader.LoadFile(configPath);
        }
        catch (ConfigException e)
        {
            Console.Error.WriteLine($"managed-disks: {e.Message}");
            return null;
        }
    }
}
