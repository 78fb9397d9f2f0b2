global using NUnit.Framework;
global using ManagedDisks.IntegrationTests.Infrastructure;
