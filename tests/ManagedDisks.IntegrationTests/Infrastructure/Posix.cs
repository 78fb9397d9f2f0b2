using System.Runtime.InteropServices;

namespace ManagedDisks.IntegrationTests.Infrastructure;

internal static partial class Posix
{
    public const int SIGTERM = 15;
    public const int SIGKILL = 9;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int signal);
}
